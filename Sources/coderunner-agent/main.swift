import AgentCore
print("coderunner-agent")
