print("coderunner-controller")
