import Foundation
import Hummingbird

/// Every route of the API, the one table both the dispatcher and the OpenAPI check read.
public enum APIRoute: String, CaseIterable, Sendable {
    case state = "GET /api/state"
    case images = "GET /api/images"
    case rescan = "POST /api/images/rescan"
    case upload = "PUT /api/images/{name}"
    case uploadForm = "POST /api/images"
    case download = "GET /api/images/{name}"
    case headImage = "HEAD /api/images/{name}"
    case remove = "DELETE /api/images/{name}"
    case create = "POST /api/images/create"
    case transfers = "GET /api/transfers"
    case abort = "DELETE /api/transfers/{id}"
    case drives = "GET /api/drives"
    case setDrive = "POST /api/drives/{lun}"
    case eject = "POST /api/drives/{lun}/eject"
    case connect = "POST /api/connect"
    case disconnect = "POST /api/disconnect"
    case events = "GET /api/events"
    case openAPI = "GET /api/openapi.yaml"
    case page = "GET /"

    /// The method, upper case.
    public var method: String { String(rawValue.prefix { $0 != " " }) }
    /// The path as OpenAPI writes it, with `{parameters}`.
    public var path: String { String(rawValue.drop { $0 != " " }.dropFirst()) }

    /// A matched route with its decoded path parameter, if it has one.
    struct Match: Equatable {
        var route: APIRoute
        var parameter: String?
    }

    /// Why a path matched no route.
    enum Miss: Error, Equatable {
        /// No route has this path.
        case notFound
        /// The path exists, but not with this method.
        case method(allowed: [String])
        /// A path segment is not valid percent-encoding, or decodes to something no name may hold.
        case badName(String)
    }

    /// Finds the route for a method and a raw (still percent-encoded) path. `{name}` takes every segment that is
    /// left, each decoded on its own, so that `%2F` can never make a separator; `{lun}` and `{id}` take one.
    static func match(method: String, rawPath: String) -> Result<Match, Miss> {
        let segments = rawPath.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        var allowed: [String] = []
        var badName: String?
        // Constant routes win over parameters: "POST /api/images/create" is not an upload called "create".
        for route in allCases.sorted(by: { $0.path.contains("{") == false && $1.path.contains("{") }) {
            let pattern = route.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
            switch bind(pattern, segments) {
            case .none:
                continue
            case .some(.failure(let miss)):
                if case .badName(let text) = miss { badName = text }
                continue
            case .some(.success(let parameter)):
                if route.method == method { return .success(Match(route: route, parameter: parameter)) }
                if !allowed.contains(route.method) { allowed.append(route.method) }
            }
        }
        if !allowed.isEmpty { return .failure(.method(allowed: allowed)) }
        if let badName { return .failure(.badName(badName)) }
        return .failure(.notFound)
    }

    private static func bind(_ pattern: [String], _ segments: [String]) -> Result<String?, Miss>? {
        var parameter: String?
        for (index, part) in pattern.enumerated() {
            if part == "{name}" {
                let rest = segments[min(index, segments.count)...]
                guard !rest.isEmpty, !(rest.count == 1 && rest.first == "") else { return nil }
                var decoded: [String] = []
                for segment in rest {
                    guard let text = segment.removingPercentEncoding else {
                        return .failure(.badName("\"\(segment)\" is not valid percent-encoding: encode each name segment as UTF-8."))
                    }
                    guard !text.contains("/") else {
                        return .failure(.badName("An image name segment may not contain \"/\": separate folders with a plain \"/\"."))
                    }
                    decoded.append(text)
                }
                return .success(decoded.joined(separator: "/"))
            }
            guard index < segments.count else { return nil }
            if part.hasPrefix("{") {
                guard !segments[index].isEmpty, let text = segments[index].removingPercentEncoding else { return nil }
                parameter = text
            } else if part != segments[index] {
                return nil
            }
        }
        return pattern.count == segments.count ? .success(parameter) : nil
    }
}
