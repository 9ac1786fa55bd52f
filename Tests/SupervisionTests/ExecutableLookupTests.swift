import Foundation
import Supervision
import TestSupport
import Testing

@Suite("PATH lookup as execvp does, in the child's PATH")
struct ExecutableLookupTests {
    @Test("the first executable regular file along PATH wins; a non-executable one earlier is skipped")
    func lookup() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let fm = FileManager.default
        for dir in ["a", "b", "c"] { try fm.createDirectory(atPath: scratch.path(dir), withIntermediateDirectories: true) }
        try scratch.script("a/tool", "#!/bin/sh\n", executable: false)
        try scratch.script("b/tool", "#!/bin/sh\n")
        try scratch.script("c/tool", "#!/bin/sh\n")
        try fm.createDirectory(atPath: scratch.path("a/dironly"), withIntermediateDirectories: true)
        try scratch.script("c/dironly", "#!/bin/sh\n")
        let path = [scratch.path("a"), scratch.path("b"), scratch.path("c")].joined(separator: ":")

        #expect(ExecutableLookup.resolve("tool", path: path) == .found(scratch.path("b/tool")))
        #expect(ExecutableLookup.resolve("dironly", path: path) == .found(scratch.path("c/dironly")))
        #expect(ExecutableLookup.resolve("tool", path: scratch.path("a")) == .permissionDenied(scratch.path("a/tool")))
        #expect(ExecutableLookup.resolve("absent", path: path) == .notFound)
        #expect(ExecutableLookup.resolve("", path: path) == .notFound)
        // A name with a slash is not looked up (posix_spawn reports what is wrong with it).
        #expect(ExecutableLookup.resolve("./tool", path: path) == .found("./tool"))
        // Without PATH, glibc's default /bin:/usr/bin applies.
        #expect(ExecutableLookup.resolve("sh", path: nil) == .found("/bin/sh"))
    }
}
