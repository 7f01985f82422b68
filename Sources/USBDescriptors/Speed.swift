/// A USB bus speed, as far as bulk endpoints care.
public enum USBSpeed: String, Sendable, CaseIterable {
    case full, high, superSpeed = "super"

    /// The only bulk wMaxPacketSize USB 2.0 and 3.x allow at this speed (USB 2.0 §5.8.3, USB 3.2 §9.6.6).
    public var bulkMaxPacketSize: Int {
        switch self {
        case .full: 64
        case .high: 512
        case .superSpeed: 1024
        }
    }
}
