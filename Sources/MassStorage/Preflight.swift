import FunctionFS
import Gadget
import Glibc

/// Checks the machine can host a FunctionFS gadget, before anything is changed; each failure says what to do.
public enum Preflight {
    public static func check(controller: String?) throws(ServerError) -> String {
        guard access("/sys/kernel/config/usb_gadget", F_OK) == 0 else {
            throw ServerError(
                "USB gadget support is not loaded: /sys/kernel/config/usb_gadget is missing (modprobe libcomposite, and mount configfs on /sys/kernel/config)."
            )
        }
        let controllers = GadgetConfigFS.controllers()
        if let controller {
            guard controllers.contains(controller) else {
                let present = controllers.isEmpty ? "none is present" : "present: \(controllers.joined(separator: ", "))"
                throw ServerError("There is no USB device controller named \(controller) (\(present)).")
            }
            return controller
        }
        switch controllers.count {
        case 0:
            throw ServerError(
                "No USB device controller was found in /sys/class/udc (is the board's OTG port in device mode? on the virtual board, load dummy_hcd)."
            )
        case 1:
            return controllers[0]
        default:
            throw ServerError(
                "Several USB device controllers are present (\(controllers.joined(separator: ", "))): choose one with --udc.")
        }
    }
}
