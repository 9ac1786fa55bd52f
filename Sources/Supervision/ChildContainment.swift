public import Glibc

/// A sandbox around the child (the Sandbox target builds one): how a child starts inside it, and how the
/// supervisor reaches the child's processes there. Without one, the supervisor uses the child's process group.
///
/// With a containment the supervisor's child is the sandbox's launcher (bubblewrap), which lives outside the app's
/// namespaces. Signals meant for the app therefore go to every process of the sandbox except that launcher (the
/// launcher would die of SIGTERM and tear the sandbox down before the app had its grace period), and "the group is
/// empty" means "no process is left in the sandbox's cgroup", which a setsid or a double fork cannot escape.
public protocol ChildContainment: Sendable {
    /// What to execute for `command` with `environment`; called on the supervisor's thread before each start.
    func prepareLaunch(command: [String], environment: [String: String]) throws(ContainmentError) -> ContainedLaunch
    /// Sends `signal` to every process in the sandbox but `sparing`.
    func signal(_ signal: Int32, sparing: pid_t?)
    /// Whether no process is left in the sandbox.
    var isEmpty: Bool { get }
    /// What to execute to run `command` beside the app, in its view (its namespaces and uid), for a health check;
    /// `launcher` is the sandbox's launcher, which lives outside that view.
    func prepareProbe(command: [String], environment: [String: String], launcher: pid_t?) throws(ContainmentError) -> ContainedLaunch
}

/// One start of a contained child.
public struct ContainedLaunch: Sendable {
    /// The program to execute and its whole argv (the command wrapped by the sandbox's launcher).
    public var path: String
    public var arguments: [String]
    public var environment: [String: String]
    /// Open cgroup.procs files the child writes itself into before it executes anything.
    public var cgroupProcs: [Int32]
    /// Descriptors the child gets as 3, 4, ... (a seccomp program, for instance).
    public var passedDescriptors: [Int32]

    public init(path: String, arguments: [String], environment: [String: String], cgroupProcs: [Int32], passedDescriptors: [Int32]) {
        self.path = path; self.arguments = arguments; self.environment = environment
        self.cgroupProcs = cgroupProcs; self.passedDescriptors = passedDescriptors
    }

    /// Closes the parent's copies of the descriptors once the child has them.
    public func close() {
        for fd in cgroupProcs + passedDescriptors { _ = Glibc.close(fd) }
    }
}

public struct ContainmentError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
