import Foundation
@testable import HTTPAPI
import Testing
import Yams

@Suite("OpenAPI document")
struct OpenAPITests {
    static let document: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("Docs/openapi.yaml"), encoding: .utf8)) ?? ""
    }()

    @Test func servedDocumentIsDocsOpenAPIYAML() {
        #expect(!Self.document.isEmpty)
        #expect(Array(OpenAPIDocument.yaml.utf8) == Array(Self.document.utf8))
    }

    @Test func pathsAndMethodsAreTheRoutes() throws {
        let tree = try #require(try Yams.load(yaml: Self.document) as? [String: Any])
        #expect(tree["openapi"] as? String == "3.1.0")
        let paths = try #require(tree["paths"] as? [String: Any])
        let methods: Set = ["get", "put", "post", "delete", "head", "patch", "options"]
        var documented: Set<String> = []
        for (path, item) in paths {
            for key in (item as? [String: Any] ?? [:]).keys where methods.contains(key) {
                documented.insert("\(key.uppercased()) \(path)")
            }
        }
        #expect(documented == Set(APIRoute.allCases.map(\.rawValue)))
    }

    @Test func servedOverHTTP() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/openapi.yaml", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == Self.document)
            }
        }
    }
}
