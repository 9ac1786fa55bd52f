// Which reaction a config change asks of the app, from the changed keys and their reloadAction.
import CodeRunnerWire
import Foundation
import Testing

@Suite struct VariableReloadTests {
    let actions: [String: VariableReload] = [
        "GREETING": .signal(.hup), "LOG_FILE": .signal(.usr1), "CACHE": .signal(.usr2), "FEATURE": .none,
        "PORT": .restart,
    ]

    @Test func aRestartWinsThenTheStrongestSignalThenNothing() {
        #expect(VariableReload.effect(of: ["GREETING", "PORT"], actions: actions) == .restart)
        #expect(VariableReload.effect(of: ["UNLISTED"], actions: actions) == .restart, "a key without an action restarts")
        #expect(VariableReload.effect(of: ["GREETING", "LOG_FILE", "CACHE", "FEATURE"], actions: actions) == .signal(.hup))
        #expect(VariableReload.effect(of: ["LOG_FILE", "CACHE"], actions: actions) == .signal(.usr2))
        #expect(VariableReload.effect(of: ["LOG_FILE", "FEATURE"], actions: actions) == .signal(.usr1))
        #expect(VariableReload.effect(of: ["FEATURE"], actions: actions) == .none)
        #expect(VariableReload.effect(of: [String](), actions: actions) == .none)
        #expect(VariableReload.effect(of: ["GREETING"], actions: [:]) == .restart, "no map: today's behaviour")
    }

    @Test func changedKeysCountAddedAndRemovedOnes() {
        let old = ["A": "1", "B": "2", "C": "3"]
        let new = ["A": "1", "B": "20", "D": "4"]
        #expect(VariableReload.changedKeys(old, new) == ["B", "C", "D"])
        #expect(VariableReload.changedKeys(old, old).isEmpty)
    }

    @Test func theWireFormIsTheActionOrTheSignalsName() throws {
        let config = AgentConfig(deploymentId: "d", version: 3, checksum: "x", variables: ["A": "1"], required: [],
                                 reloadActions: ["A": .signal(.hup), "B": .none, "C": .restart])
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(config.reloadActions), as: UTF8.self)
        #expect(json == #"{"A":"SIGHUP","B":"none","C":"restart"}"#)
        let back = try JSONDecoder().decode(AgentConfig.self, from: try encoder.encode(config))
        #expect(back == config)
        // A controller that sends no map (an older one) means: restart on every change.
        let old = try JSONDecoder().decode(AgentConfig.self, from: Data(#"{"deploymentId":"d","version":1,"checksum":"x","variables":{},"required":[]}"#.utf8))
        #expect(old.reloadActions == nil)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([String: VariableReload].self, from: Data(#"{"A":"SIGKILL"}"#.utf8))
        }
        #expect(ReloadSignal.allCases.map(\.number) == [1, 10, 12])
    }
}
