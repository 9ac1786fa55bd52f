// CodeRunnerWire
