// The security issue's items: revoked agent tokens, server exhaustion, registration, enumeration, template names.
import AsyncHTTPClient
import Foundation
import GRDB
import HTTPTypes
import NIOCore
import NIOHTTP1
import Synchronization
import Testing
import TestSupport
@testable import ControlPlane
import HummingbirdTesting

extension Client {
    /// A request on a connection of its own. The live test client sends its requests down one connection, one
    /// after another, so a held blocking query there would hold up every later request of the test.
    func callAlone(_ method: HTTPMethod, _ uri: String, token: String? = nil, json: String? = nil) async throws -> Answer {
        let port = try #require(client.port)
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(uri)")
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 1 << 20)
        var headers = HTTPFields()
        for (name, value) in response.headers {
            if let name = HTTPField.Name(name) { headers.append(HTTPField(name: name, value: value)) }
        }
        return Answer(status: HTTPResponse.Status(code: Int(response.status.code)), headers: headers, body: body)
    }
}

// MARK: 1. A revoked agent token is served nothing more

@Suite struct AgentTokenRevocationTests {
    @Test("revoking a deployment's tokens ends its held blocking queries with 401 at once")
    func revocationWakesHeldQueriesWith401() async throws {
        let harness = try Harness()
        try await harness.run(.live) { client in
            let (token, project) = try await client.signUpWithProject("revoke@example.com")
            let config = try await client.createConfig(token, project: project)
            let (deployment, agentToken) = try await client.createDeployment(token, project: project)
            async let held = client.callAlone(.GET, "/api/agent/v1/config?index=1&wait=5m", token: agentToken)
            #expect(await TestSupport.waitUntil(timeout: .seconds(10)) { await client.controlPlane.hub.waitingCount == 1 })
            let revoked = try await client.call(.delete, "/api/deployments/\(deployment)/agent-token", token: token)
            #expect(revoked.status == .ok)
            // Woken by the revocation itself, not by a timer or a later change.
            var woken = false
            for _ in 0..<250 {
                if await client.controlPlane.hub.waitingCount == 0 { woken = true; break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(woken, "the held query still waits after its token was revoked")
            // Had it kept waiting, the next change must not reach it either.
            try await client.setVariable(token, config: config, key: "AFTER", value: "revocation")
            harness.timer.fire()
            let answer = try await held
            #expect(answer.status == .unauthorized)
            #expect(answer.error == "invalid or revoked agent token")
            #expect(!answer.text.contains("revocation"))
        }
    }

    @Test("reissuing a token wakes the old token's held queries with 401; the new token is served")
    func reissueWakesOldTokensQueries() async throws {
        let harness = try Harness()
        try await harness.run(.live) { client in
            let (token, _, deployment, oldToken) = try await client.signUpWithDeployment("reissue@example.com")
            async let held = client.callAlone(.GET, "/api/agent/v1/config?index=1&wait=5m", token: oldToken)
            #expect(await TestSupport.waitUntil(timeout: .seconds(10)) { await client.controlPlane.hub.waitingCount == 1 })
            let issued = try await client.call(.post, "/api/deployments/\(deployment)/agent-token", token: token)
            let newToken = try #require(issued.string("agentToken"))
            #expect(await TestSupport.waitUntil(timeout: .seconds(5)) { await client.controlPlane.hub.waitingCount == 0 })
            harness.timer.fire()
            #expect(try await held.status == .unauthorized)
            #expect(try await client.call(.get, "/api/agent/v1/config", token: newToken).status == .ok)
        }
    }

    @Test("a wait whose token was revoked between its check and its parking does not park")
    func revokedBeforeParkingDoesNotPark() async {
        let hub = ConfigWatchHub()
        let outcome = await hub.wait(deploymentId: "d", tokenHash: "h", above: 1, seen: 1, timeout: .seconds(300),
                                     stillAuthorized: { false }, sleep: ManualTimer().sleep)
        #expect(outcome == .revoked)
        #expect(await hub.waitingCount == 0)
    }

    @Test("revoking one token wakes only the queries holding it")
    func revokingOneTokenWakesOnlyItsQueries() async throws {
        let hub = ConfigWatchHub()
        let timer = ManualTimer()
        async let revoked = hub.wait(deploymentId: "d", tokenHash: "a", above: 1, seen: 1, timeout: .seconds(300),
                                     stillAuthorized: { true }, sleep: timer.sleep)
        async let other = hub.wait(deploymentId: "d", tokenHash: "b", above: 1, seen: 1, timeout: .seconds(300),
                                   stillAuthorized: { true }, sleep: timer.sleep)
        #expect(await TestSupport.waitUntil(timeout: .seconds(10)) { await hub.waitingCount == 2 })
        await hub.revoke(deploymentId: "d", tokenHash: "a")
        #expect(await revoked == .revoked)
        #expect(await hub.waitingCount == 1)
        await hub.revoke(tokenHash: "b")
        #expect(await other == .revoked)
        timer.fire()
    }

    /// The token cache's race: a lookup that read the database before the revocation committed must not put
    /// the token back into the cache after the revocation emptied it. Many lookups race each revocation.
    @Test("under load, no lookup refills the token cache after a revocation")
    func tokenCacheIsNotRefilledAfterRevocation() async throws {
        try await Harness().run { client in
            let (token, _, deployment, _) = try await client.signUpWithDeployment("race@example.com")
            let service = client.controlPlane.deployments
            let owner = try await client.controlPlane.auth.authenticate(token: token)
            let actor = Actor(userId: owner.id)
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: .seconds(60))
            var rounds = 0
            var servedAfterRevocation = 0
            while rounds < 150, clock.now < deadline {
                rounds += 1
                let agentToken = try await service.reissueToken(deployment, actor: actor).agentToken
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<16 {
                        group.addTask { _ = try? await service.deploymentId(agentToken: agentToken) }
                    }
                    group.addTask {
                        await Task.yield()
                        try await service.revokeTokens(deployment, actor: actor)
                    }
                    try await group.waitForAll()
                }
                if (try? await service.deploymentId(agentToken: agentToken)) != nil { servedAfterRevocation += 1 }
            }
            #expect(rounds >= 20, "only \(rounds) rounds ran within the time bound")
            #expect(servedAfterRevocation == 0, "a revoked token was still accepted after \(servedAfterRevocation) of \(rounds) revocations")
        }
    }
}

// MARK: 2. Server exhaustion

/// A plain TCP client, to send what no HTTP client would: half a request.
final class RawConnection: Sendable {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        // Every read below is bounded by this.
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) {
        var bytes = Array(text.utf8)
        _ = Glibc.send(fd, &bytes, bytes.count, Int32(MSG_NOSIGNAL))
    }

    /// Reads until the server closes (true), or until the read timeout or `until` is found in the text (false).
    /// Runs on its own thread: a blocking read must not hold one of the cooperative pool's few threads.
    func read(until marker: String? = nil) async -> (text: String, closed: Bool, elapsed: Duration) {
        await withCheckedContinuation { continuation in
            Thread {
                let clock = ContinuousClock()
                let start = clock.now
                var received: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                var closed = false
                for _ in 0..<1000 {
                    let n = recv(self.fd, &buffer, buffer.count, 0)
                    if n == 0 || (n < 0 && errno == ECONNRESET) { closed = true; break }
                    if n < 0 { break }
                    received += buffer[0..<n]
                    if let marker, String(decoding: received, as: UTF8.self).contains(marker) { break }
                }
                continuation.resume(returning: (String(decoding: received, as: UTF8.self), closed, start.duration(to: clock.now)))
            }.start()
        }
    }
}

@Suite struct ServerExhaustionTests {
    func harness() throws -> Harness {
        try Harness { configuration in
            configuration.headerReadTimeout = .seconds(1)
            configuration.idleTimeout = .seconds(3)
        }
    }

    @Test("a client that sends half a request head is disconnected after the header timeout")
    func halfARequestIsDisconnected() async throws {
        try await harness().run(.live) { client in
            let connection = try RawConnection(port: try #require(client.client.port))
            connection.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            let result = await connection.read()
            #expect(result.closed, "still connected after \(result.elapsed)")
            #expect(result.text.isEmpty)
            // The 1 s header timeout, well before the 3 s idle timeout (scheduling slack on a loaded machine).
            #expect(result.elapsed >= .milliseconds(900) && result.elapsed < .milliseconds(2800), "\(result.elapsed)")
        }
    }

    @Test("the header timer starts at a request's first byte: a quiet keep-alive connection is the idle timeout's")
    func quietConnectionsAreClosedByTheIdleTimeout() async throws {
        try await harness().run(.live) { client in
            let port = try #require(client.client.port)
            // Quiet for longer than the header timeout, then a whole request: answered.
            let quiet = try RawConnection(port: port)
            try await Task.sleep(for: .milliseconds(1500))
            quiet.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            let answer = await quiet.read(until: #""status":"ok""#)
            #expect(answer.text.hasPrefix("HTTP/1.1 200"), "\(answer.text.prefix(200))")
            #expect(!answer.closed)
            // Then idle: closed by the 3 s idle timeout.
            let idle = await quiet.read()
            #expect(idle.closed, "an idle connection stayed open for \(idle.elapsed)")
            #expect(idle.elapsed >= .milliseconds(2500) && idle.elapsed < .seconds(10), "\(idle.elapsed)")
        }
    }

    @Test("an agent token holds at most --max-polls-per-token blocking queries; one more is 429 with a reason")
    func pollsPerTokenAreLimited() async throws {
        let harness = try Harness { $0.maxPollsPerToken = 2 }
        try await harness.run(.live) { client in
            let (_, _, _, agentToken) = try await client.signUpWithDeployment("polls@example.com")
            let uri = "/api/agent/v1/config?index=1&wait=5m"
            async let first = client.callAlone(.GET, uri, token: agentToken)
            async let second = client.callAlone(.GET, uri, token: agentToken)
            #expect(await TestSupport.waitUntil(timeout: .seconds(10)) { await client.controlPlane.hub.waitingCount == 2 })
            let third = Task { try await client.callAlone(.GET, uri, token: agentToken) }
            let done = Mutex(false)
            Task { _ = try? await third.value; done.withLock { $0 = true } }
            #expect(await TestSupport.waitUntil(timeout: .seconds(5)) { done.withLock { $0 } }, "the third query was held")
            harness.timer.fire()
            let refused = try await third.value
            #expect(refused.status == .tooManyRequests)
            #expect(refused.error == "too many blocking queries for this agent token: at most 2 at once")
            #expect(refused.headers[.retryAfter] == "1")
            #expect(try await first.status == .ok)
            #expect(try await second.status == .ok)
            // Released: a new query is admitted (and answers at once, its index being below the version).
            #expect(try await client.call(.get, "/api/agent/v1/config?index=0", token: agentToken).status == .ok)
        }
    }

    @Test("login and registration are rate-limited per client address: 429 with Retry-After")
    func authAttemptsAreRateLimited() async throws {
        try await Harness(authRateLimit: .init(burst: 3, refillInterval: .seconds(20))).run(.live) { client in
            let credentials = client.json(["email": "guess@example.com", "password": "wrong password"])
            for _ in 0..<3 {
                #expect(try await client.call(.post, "/api/auth/login", json: credentials).status == .unauthorized)
            }
            let limited = try await client.call(.post, "/api/auth/login", json: credentials)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] == "20")
            #expect(limited.error == "too many login or registration attempts from this address; retry in 20 s")
            limited.expectEnvelope()
            let register = try await client.call(.post, "/api/auth/register",
                                                 json: client.json(["email": "new@example.com", "password": "longenough"]))
            #expect(register.status == .tooManyRequests)
        }
    }
}

@Suite struct TokenBucketTests {
    @Test func burstThenOnePerInterval() {
        var limiter = TokenBucketLimiter(policy: .init(burst: 3, refillInterval: .seconds(10)))
        for _ in 0..<3 { #expect(limiter.take("a", now: .zero) == .allowed) }
        #expect(limiter.take("a", now: .zero) == .limited(retryAfterSeconds: 10))
        #expect(limiter.take("a", now: .seconds(4)) == .limited(retryAfterSeconds: 6))
        #expect(limiter.take("a", now: .milliseconds(9_500)) == .limited(retryAfterSeconds: 1))
        #expect(limiter.take("a", now: .seconds(10)) == .allowed)
        #expect(limiter.take("a", now: .seconds(10)) == .limited(retryAfterSeconds: 10))
        // Another address has its own bucket.
        #expect(limiter.take("b", now: .seconds(10)) == .allowed)
        // A long pause refills up to the burst, not beyond.
        for _ in 0..<3 { #expect(limiter.take("a", now: .seconds(1000)) == .allowed) }
        #expect(limiter.take("a", now: .seconds(1000)) == .limited(retryAfterSeconds: 10))
    }

    @Test func perMinutePolicy() {
        #expect(TokenBucketLimiter.Policy.perMinute(10) == .init(burst: 10, refillInterval: .seconds(6)))
    }

    @Test("full buckets are dropped when too many addresses are tracked; a limited one is kept")
    func prunesFullBuckets() {
        var limiter = TokenBucketLimiter(policy: .init(burst: 1, refillInterval: .seconds(10)), maxKeys: 10)
        for i in 0..<20 { #expect(limiter.take("addr-\(i)", now: .zero) == .allowed) }
        // All twenty are empty: none can be forgotten without forgetting a limit.
        #expect(limiter.trackedKeys == 20)
        // Thirty seconds later they are full again (they carry nothing); the one just used is kept.
        #expect(limiter.take("busy", now: .seconds(30)) == .allowed)
        #expect(limiter.trackedKeys == 1)
        #expect(limiter.take("busy", now: .seconds(30)) == .limited(retryAfterSeconds: 10))
    }

    @Test("the header deadline runs from a request's first byte to its head, and only then")
    func headerDeadlineStateMachine() {
        var deadline = HeaderReadDeadline()
        #expect(!deadline.expired())
        #expect(deadline.bytesRead() == .arm)
        #expect(deadline.bytesRead() == .none, "more bytes of the same head do not restart the clock")
        #expect(deadline.expired())
        #expect(deadline.headDecoded() == .disarm)
        #expect(!deadline.expired())
        #expect(deadline.bytesRead() == .none, "body bytes, or a pipelined request, while one is in flight")
        #expect(deadline.headDecoded() == .none, "a pipelined head")
        deadline.responseEnded()
        #expect(deadline.bytesRead() == .none)
        deadline.responseEnded()
        #expect(deadline.bytesRead() == .arm, "the next request on a keep-alive connection")
    }
}

// MARK: 3. Registration is the operator's choice

@Suite struct RegistrationModeTests {
    func register(_ client: Client, _ email: String, invite: String? = nil, alone: Bool = false) async throws -> Answer {
        var body: [String: Any] = ["email": email, "password": "correct horse battery"]
        if let invite { body["inviteCode"] = invite }
        if alone { return try await client.callAlone(.POST, "/api/auth/register", json: client.json(body)) }
        return try await client.call(.post, "/api/auth/register", json: client.json(body))
    }

    @Test("by default only the first user registers (and is the administrator); then registration is closed")
    func defaultIsFirstUserOnly() async throws {
        try await Harness(registration: nil).run { client in
            let first = try await register(client, "first@example.com")
            #expect(first.status == .created)
            #expect(first.data["isAdmin"] as? Bool == true)
            let second = try await register(client, "second@example.com")
            #expect(second.status == .forbidden)
            #expect(second.error == "registration is closed: it is open only until the first user (the administrator) exists; the operator can start the controller with --registration open or invite")
            second.expectEnvelope()
        }
    }

    @Test("concurrent first registrations: exactly one succeeds and is the administrator")
    func concurrentFirstRegistrations() async throws {
        let harness = try Harness(registration: nil)
        try await harness.run(.live) { client in
            let answers = try await withThrowingTaskGroup(of: Answer.self) { group in
                for i in 0..<8 { group.addTask { try await register(client, "racer\(i)@example.com", alone: true) } }
                var answers: [Answer] = []
                for try await answer in group { answers.append(answer) }
                return answers
            }
            #expect(answers.filter { $0.status == .created }.count == 1)
            #expect(answers.filter { $0.status == .forbidden }.count == 7)
            #expect(answers.first { $0.status == .created }?.data["isAdmin"] as? Bool == true)
            #expect(try harness.sqlite("SELECT COUNT(*) FROM users") == "1")
        }
    }

    @Test("open: everyone registers, concurrently too, and exactly one is the administrator")
    func openRegistrationHasOneAdministrator() async throws {
        let harness = try Harness(registration: .open)
        try await harness.run(.live) { client in
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for i in 0..<8 { group.addTask { try await register(client, "open\(i)@example.com", alone: true).status } }
                var statuses: [HTTPResponse.Status] = []
                for try await status in group { statuses.append(status) }
                return statuses
            }
            #expect(statuses == Array(repeating: .created, count: 8))
            #expect(try harness.sqlite("SELECT COUNT(*) FROM users WHERE is_admin = 1") == "1")
        }
    }

    @Test func closedRefusesEveryone() async throws {
        let harness = try Harness(registration: .closed)
        try await harness.run { client in
            let answer = try await register(client, "nobody@example.com")
            #expect(answer.status == .forbidden)
            #expect(answer.error == "registration is closed on this controller; an administrator can change --registration")
            #expect(try harness.sqlite("SELECT COUNT(*) FROM users") == "0")
        }
    }

    @Test("invite: an administrator's single-use code, audited; without one, 403 with the reason")
    func inviteOnly() async throws {
        let harness = try Harness(registration: .invite)
        try await harness.run { client in
            // The first user needs no invite (nobody could have made one) and is the administrator.
            let admin = try await client.signUp("admin@example.com")
            let refused = try await register(client, "guest@example.com")
            #expect(refused.status == .forbidden)
            #expect(refused.error == "registration requires an invite: send inviteCode, which an administrator creates with POST /api/auth/invites")
            let invite = try await client.call(.post, "/api/auth/invites", token: admin)
            #expect(invite.status == .created)
            let code = try #require(invite.string("code"))
            #expect(code.hasPrefix("cri_") && code.count == 68)
            // A wrong code is refused before the address is looked at.
            let wrong = try await register(client, "admin@example.com", invite: "cri_nope")
            #expect(wrong.error == "the invite code is invalid, expired or already used")
            let guest = try await register(client, "guest@example.com", invite: code)
            #expect(guest.status == .created)
            #expect(guest.data["isAdmin"] as? Bool == false)
            let reused = try await register(client, "other@example.com", invite: code)
            #expect(reused.status == .forbidden)
            #expect(reused.error == "the invite code is invalid, expired or already used")
            // Only administrators create invites.
            let login = try await client.call(.post, "/api/auth/login", json: client.json(["email": "guest@example.com", "password": "correct horse battery"]))
            let guestToken = try #require(login.string("token"))
            let notAdmin = try await client.call(.post, "/api/auth/invites", token: guestToken)
            #expect(notAdmin.status == .forbidden)
            #expect(notAdmin.error == "administrator role required")
            #expect(try harness.sqlite("SELECT action FROM config_audit_logs WHERE resource_type = 'invite' ORDER BY sequence") == "create\nuse")
            #expect(try harness.sqlite("SELECT COUNT(*) FROM registration_invites WHERE code_hash = '\(code)'") == "0")
        }
    }
}

// MARK: 4. User enumeration

@Suite(.serialized) struct UserEnumerationTests {
    @Test("registering an existing address answers a generic failure that does not say the address exists")
    func duplicateRegistrationIsGeneric() async throws {
        try await Harness().run { client in
            _ = try await client.signUp("taken@example.com")
            let again = try await client.call(.post, "/api/auth/register",
                                              json: client.json(["email": "taken@example.com", "password": "another password"]))
            #expect(again.status == .conflict)
            #expect(again.error == "registration failed: this e-mail address cannot be registered; if you have an account, sign in")
            #expect(again.error?.contains("exists") == false)
        }
    }

    @Test("a login for an unknown address takes as long as a wrong password for a known one (bcrypt either way)")
    func unknownEmailLoginSpendsABcrypt() async throws {
        // A real cost: at cost 4 a verification is a millisecond, lost in the noise.
        try await Harness(bcryptCost: 10).run { client in
            _ = try await client.signUp("known@example.com")
            func median(_ email: String) async throws -> Duration {
                var times: [Duration] = []
                for _ in 0..<5 {
                    let clock = ContinuousClock()
                    let start = clock.now
                    let answer = try await client.call(.post, "/api/auth/login",
                                                       json: client.json(["email": email, "password": "not the password"]))
                    times.append(start.duration(to: clock.now))
                    #expect(answer.status == .unauthorized)
                    #expect(answer.error == "Invalid credentials")
                }
                return times.sorted()[2]
            }
            let known = try await median("known@example.com")
            let unknown = try await median("ghost@example.com")
            // Both spend one verification; on a loaded machine either may be slowed, hence only "a good fraction".
            #expect(unknown >= known * 0.4, "unknown \(unknown) vs known \(known)")
        }
    }
}

// MARK: 5. Template names per owner

@Suite struct TemplateNamesTests {
    func create(_ client: Client, _ token: String, name: String, key: String) async throws -> Answer {
        try await client.call(.post, "/api/config/templates", token: token, json: client.json([
            "name": name, "description": "d", "category": "custom",
            "templateData": ["environments": ["production"], "variables": [
                ["key": key, "defaultValue": "v", "isRequired": false, "isEncrypted": false, "description": "", "variableType": "string"],
            ]],
        ]))
    }

    @Test("two users create templates of the same name; neither learns of the other's")
    func sameNameForTwoOwners() async throws {
        try await Harness().run { client in
            let alice = try await client.signUp("alice@example.com")
            let bob = try await client.signUp("bob@example.com")
            let hers = try await create(client, alice, name: "Team stack", key: "ALICE")
            #expect(hers.status == .created)
            let his = try await create(client, bob, name: "Team stack", key: "BOB")
            #expect(his.status == .created, "\(his.text)")
            let hersId = try #require(hers.string("id"))
            let hisId = try #require(his.string("id"))
            let aliceList = try await client.call(.get, "/api/config/templates?category=custom", token: alice).list
            let bobList = try await client.call(.get, "/api/config/templates?category=custom", token: bob).list
            #expect(aliceList.compactMap { $0["id"] as? String } == [hersId])
            #expect(bobList.compactMap { $0["id"] as? String } == [hisId])
            // Bob cannot apply Alice's template: not found, as if it did not exist.
            let project = try await client.createProject(bob)
            let applied = try await client.call(.post, "/api/config/projects/\(project)/apply-template", token: bob,
                                                json: client.json(["templateId": hersId, "environment": "production"]))
            #expect(applied.status == .notFound)
            // One owner still cannot have two of the same name.
            let again = try await create(client, alice, name: "Team stack", key: "AGAIN")
            #expect(again.status == .conflict)
            #expect(again.error == "you already have a template with this name")
            // Official templates stay visible to everyone, and a user's template may share an official name.
            let official = try await create(client, bob, name: "Go", key: "MINE")
            #expect(official.status == .created)
            let all = try await client.call(.get, "/api/config/templates", token: alice).list
            #expect(all.filter { $0["isOfficial"] as? Bool == true }.count == 7)
        }
    }
}

@Suite struct TemplateNamesMigrationTests {
    @Test("v5-template-names-per-owner keeps every template of a database made before it")
    func upgradeKeepsTemplates() async throws {
        let directory = try TestSupport.makeTemporaryDirectory("template-migration")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("coderunner.sqlite").path
        do {
            // The schema as it was before the migration, with an official and a user's template in it.
            let pool = try DatabasePool(path: path)
            try Migrations.migrator.migrate(pool, upTo: "v100-scaling")
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT INTO users (id, email, password_hash, is_admin, created_at) VALUES ('u1', 'a@example.com', 'x', 1, '2026-01-01');
                    INSERT INTO config_templates (id, name, description, category, is_official, owner_id, usage_count, template_data, created_at, updated_at)
                    VALUES ('t1', 'Go', 'official', 'go', 1, NULL, 3, '{}', '2026-01-01', '2026-01-01'),
                           ('t2', 'Mine', 'a user''s', 'custom', 0, 'u1', 1, '{}', '2026-01-01', '2026-01-01');
                    """)
            }
        }
        let store = try SQLiteStore(path: path)
        let rows = try await store.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, name, owner_id, usage_count FROM config_templates ORDER BY id")
                .map { "\($0["id"] as String)|\($0["name"] as String)|\(($0["owner_id"] as String?) ?? "-")|\($0["usage_count"] as Int)" }
        }
        #expect(rows == ["t1|Go|-|3", "t2|Mine|u1|1"])
        // Names are now unique per owner: another user may take "Mine", its owner may not take it twice.
        try await store.pool.write { db in
            try db.execute(sql: "INSERT INTO users (id, email, password_hash, is_admin, created_at) VALUES ('u2', 'b@example.com', 'x', 0, '2026-01-01')")
            try db.execute(sql: """
                INSERT INTO config_templates (id, name, description, category, is_official, owner_id, usage_count, template_data, created_at, updated_at)
                VALUES ('t3', 'Mine', '', 'custom', 0, 'u2', 0, '{}', '2026-01-01', '2026-01-01')
                """)
        }
        await #expect(throws: DatabaseError.self) {
            try await store.pool.write { db in
                try db.execute(sql: """
                    INSERT INTO config_templates (id, name, description, category, is_official, owner_id, usage_count, template_data, created_at, updated_at)
                    VALUES ('t4', 'Mine', '', 'custom', 0, 'u1', 0, '{}', '2026-01-01', '2026-01-01')
                    """)
            }
        }
        // Seeding the official templates again adds no duplicate.
        try await store.seedTemplates(OfficialTemplates.templates(now: Date()))
        #expect(try await store.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM config_templates WHERE name = 'Go'") } == 1)
    }
}
