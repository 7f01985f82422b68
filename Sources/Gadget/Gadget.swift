import CUSBGX
import Glibc

/// A failure while creating, binding or removing a gadget, as one sentence.
public struct GadgetError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A USB gadget with one configuration holding one FunctionFS function, described as a value.
public struct GadgetDescription: Sendable, Equatable {
    /// The directory name under /sys/kernel/config/usb_gadget.
    public var name = "umsd"
    /// Linux Foundation's multifunction composite gadget id, what PiKVM and most appliances use.
    public var vendorID: UInt16 = 0x1D6B
    public var productID: UInt16 = 0x0104
    public var deviceRelease: UInt16 = 0x0100
    public var manufacturer = "umsd"
    public var product = "umsd mass storage"
    /// iSerialNumber: BOT 1.0 §4.1.1 asks for at least 12 hex digits; Windows keys per-device state on it.
    public var serial: String
    public var configuration = "Mass Storage"
    /// bMaxPower in mA.
    public var maxPowerMilliamps = 500
    /// The FunctionFS instance name, which is also the device name to mount.
    public var functionInstance = "umsd"

    public init(serial: String) { self.serial = serial }
}

/// The configfs state, opened through libusbgx.
public final class GadgetConfigFS {
    let state: OpaquePointer

    /// The corresponding C call is `usbg_init`.
    public init(path: String = "/sys/kernel/config") throws(GadgetError) {
        var state: OpaquePointer?
        let result = usbg_init(path, &state)
        guard result == USBG_SUCCESS.rawValue, let state else {
            throw GadgetError(
                "USB gadget configfs is not available at \(path)/usb_gadget (\(errorText(result))); load libcomposite and mount configfs."
            )
        }
        self.state = state
    }

    deinit { usbg_cleanup(state) }

    /// Names of the USB device controllers present (/sys/class/udc).
    public static func controllers() -> [String] {
        guard let dir = opendir("/sys/class/udc") else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted()
    }

    /// The controller the gadget `name` is bound to now, if it exists and is bound.
    public func controller(ofGadget name: String) -> String? {
        guard let gadget = usbg_get_gadget(state, name), let udc = usbg_get_gadget_udc(gadget),
            let udcName = usbg_get_udc_name(udc)
        else { return nil }
        return String(cString: udcName)
    }

    /// Removes a gadget of this name left behind by a process that died: unbinds it and deletes it recursively.
    /// Returns true when one was found.
    @discardableResult
    public func removeLeftover(named name: String) throws(GadgetError) -> Bool {
        guard let gadget = usbg_get_gadget(state, name) else { return false }
        _ = usbg_disable_gadget(gadget)
        let result = usbg_rm_gadget(gadget, Int32(USBG_RM_RECURSE))
        guard result == USBG_SUCCESS.rawValue else {
            throw GadgetError("The leftover gadget \(name) could not be removed: \(errorText(result)).")
        }
        return true
    }

    /// Creates the gadget, its configuration and its FunctionFS function (not yet bound to a controller).
    public func create(_ description: GadgetDescription) throws(GadgetError) -> CreatedGadget {
        var attributes = usbg_gadget_attrs()
        attributes.bcdUSB = 0x0200  // the composite layer raises it for SuperSpeed connections
        attributes.bDeviceClass = 0  // class per interface
        attributes.bMaxPacketSize0 = 64
        attributes.idVendor = description.vendorID
        attributes.idProduct = description.productID
        attributes.bcdDevice = description.deviceRelease

        var gadget: OpaquePointer?
        var result = withCStrings(description.manufacturer, description.product, description.serial) {
            manufacturer, product, serial in
            var strings = usbg_gadget_strs(manufacturer: manufacturer, product: product, serial: serial)
            return usbg_create_gadget(state, description.name, &attributes, &strings, &gadget)
        }
        guard result == USBG_SUCCESS.rawValue, let gadget else {
            throw GadgetError("The gadget \(description.name) could not be created: \(errorText(result)).")
        }
        let created = CreatedGadget(gadget: gadget, state: state, name: description.name)

        var function: OpaquePointer?
        result = usbg_create_function(gadget, USBG_F_FFS, description.functionInstance, nil, &function)
        guard result == USBG_SUCCESS.rawValue, let function else {
            created.remove()
            throw GadgetError(
                "The FunctionFS function could not be created: \(errorText(result)); is FunctionFS (usb_f_fs) available?")
        }
        var configAttributes = usbg_config_attrs(
            bmAttributes: 0x80, bMaxPower: UInt8(clamping: description.maxPowerMilliamps / 2))
        var config: OpaquePointer?
        result = withCStrings(description.configuration, "", "") { label, _, _ in
            var strings = usbg_config_strs(configuration: label)
            return usbg_create_config(gadget, 1, "c", &configAttributes, &strings, &config)
        }
        guard result == USBG_SUCCESS.rawValue, let config else {
            created.remove()
            throw GadgetError("The gadget configuration could not be created: \(errorText(result)).")
        }
        result = usbg_add_config_function(config, description.functionInstance, function)
        guard result == USBG_SUCCESS.rawValue else {
            created.remove()
            throw GadgetError("The function could not be added to the configuration: \(errorText(result)).")
        }
        return created
    }
}

extension GadgetConfigFS {
    /// Adds a FunctionFS function to the appliance's existing gadget `name` (keyboard, mouse and storage on one USB
    /// port), in its first configuration. The gadget is unbound while it changes; `CreatedGadget.remove()` takes
    /// the function out again and binds the gadget back where it was.
    public func join(existing name: String, functionInstance: String) throws(GadgetError) -> CreatedGadget {
        guard let gadget = usbg_get_gadget(state, name) else {
            throw GadgetError("There is no gadget named \(name) in configfs to add umsd's function to.")
        }
        guard let config = usbg_get_first_config(gadget) else {
            throw GadgetError("The gadget \(name) has no configuration to add umsd's function to.")
        }
        var previousController: String?
        if let udc = usbg_get_gadget_udc(gadget), let udcName = usbg_get_udc_name(udc) {
            previousController = String(cString: udcName)
        }
        _ = usbg_disable_gadget(gadget)
        // A function left by an umsd that died: take it out first (its bindings go with it).
        if let leftover = usbg_get_function(gadget, USBG_F_FFS, functionInstance) {
            _ = usbg_rm_function(leftover, Int32(USBG_RM_RECURSE))
        }
        var function: OpaquePointer?
        var result = usbg_create_function(gadget, USBG_F_FFS, functionInstance, nil, &function)
        guard result == USBG_SUCCESS.rawValue, let function else {
            if let previousController, let udc = usbg_get_udc(state, previousController) { _ = usbg_enable_gadget(gadget, udc) }
            throw GadgetError("The FunctionFS function could not be added to \(name): \(errorText(result)).")
        }
        result = usbg_add_config_function(config, "umsd.\(functionInstance)", function)
        guard result == USBG_SUCCESS.rawValue else {
            _ = usbg_rm_function(function, Int32(USBG_RM_RECURSE))
            if let previousController, let udc = usbg_get_udc(state, previousController) { _ = usbg_enable_gadget(gadget, udc) }
            throw GadgetError("The function could not be added to \(name)'s configuration: \(errorText(result)).")
        }
        return CreatedGadget(
            gadget: gadget, state: state, name: name,
            joined: (function: function, previousController: previousController))
    }
}

/// A gadget that exists in configfs until `remove()`: umsd's own, or an appliance's that umsd joined.
public final class CreatedGadget {
    private let gadget: OpaquePointer
    private let state: OpaquePointer
    public let name: String
    /// For a joined gadget: umsd's function in it, and the controller it was bound to before umsd came.
    private let joined: (function: OpaquePointer, previousController: String?)?

    init(gadget: OpaquePointer, state: OpaquePointer, name: String,
         joined: (function: OpaquePointer, previousController: String?)? = nil) {
        self.gadget = gadget
        self.state = state
        self.name = name
        self.joined = joined
    }

    /// The controller the appliance had bound its gadget to, if umsd joined one that was bound.
    public var previousController: String? { joined?.previousController }

    /// Binds the gadget to the controller named `controller`, which makes it visible to the host.
    public func bind(to controller: String) throws(GadgetError) {
        guard let udc = usbg_get_udc(state, controller) else {
            throw GadgetError("There is no USB device controller named \(controller).")
        }
        if let other = usbg_get_udc_gadget(udc), let otherName = usbg_get_gadget_name(other) {
            throw GadgetError("The USB device controller \(controller) is in use by the gadget \(String(cString: otherName)).")
        }
        let result = usbg_enable_gadget(gadget, udc)
        guard result == USBG_SUCCESS.rawValue else {
            throw GadgetError("The gadget could not be bound to \(controller): \(errorText(result)).")
        }
    }

    /// Unbinds from the controller: to the host, the cable is pulled.
    public func unbind() {
        _ = usbg_disable_gadget(gadget)
    }

    /// Unbinds and deletes the gadget from configfs; a joined gadget only loses umsd's function and is bound back
    /// to its controller, so the appliance's other functions keep working.
    public func remove() {
        _ = usbg_disable_gadget(gadget)
        guard let joined else {
            _ = usbg_rm_gadget(gadget, Int32(USBG_RM_RECURSE))
            return
        }
        _ = usbg_rm_function(joined.function, Int32(USBG_RM_RECURSE))
        if let controller = joined.previousController, let udc = usbg_get_udc(state, controller) {
            _ = usbg_enable_gadget(gadget, udc)
        }
    }
}

private func errorText(_ code: Int32) -> String {
    String(cString: usbg_strerror(usbg_error(rawValue: code)))
}

private func withCStrings<R>(
    _ a: String, _ b: String, _ c: String,
    _ body: (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>) -> R
) -> R {
    // strdup'd copies: libusbgx takes `char *` and only reads them during the call.
    let pa = strdup(a)!, pb = strdup(b)!, pc = strdup(c)!
    defer {
        free(pa)
        free(pb)
        free(pc)
    }
    return body(pa, pb, pc)
}
