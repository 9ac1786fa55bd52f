// The official templates seeded at start, one per popular framework. Defaults are conventional
// values from each framework's documentation; secrets never have defaults.
import Foundation

enum OfficialTemplates {
    static let all: [(name: String, category: String, framework: String, description: String, variables: [TemplateVariable])] = [
        ("Node.js / Express", "nodejs", "express", "An Express API server on Node.js.", [
            TemplateVariable(key: "NODE_ENV", defaultValue: "production", isRequired: true, description: "Node environment", examples: ["development", "production"]),
            TemplateVariable(key: "PORT", defaultValue: "3000", isRequired: true, description: "Port the server listens on", variableType: .number),
            TemplateVariable(key: "DATABASE_URL", isRequired: true, isEncrypted: true, description: "Database connection URL", variableType: .secret),
            TemplateVariable(key: "SESSION_SECRET", isRequired: true, isEncrypted: true, description: "Secret signing session cookies", variableType: .secret),
            TemplateVariable(key: "LOG_LEVEL", defaultValue: "info", description: "Logging verbosity"),
        ]),
        ("Python / Django", "python", "django", "A Django web application.", [
            TemplateVariable(key: "DJANGO_SETTINGS_MODULE", isRequired: true, description: "Dotted path of the settings module", examples: ["mysite.settings"]),
            TemplateVariable(key: "DJANGO_SECRET_KEY", isRequired: true, isEncrypted: true, description: "Django SECRET_KEY", variableType: .secret),
            TemplateVariable(key: "DJANGO_DEBUG", defaultValue: "false", description: "Debug mode; never true in production", variableType: .boolean),
            TemplateVariable(key: "DJANGO_ALLOWED_HOSTS", defaultValue: "localhost", description: "Comma-separated host names"),
            TemplateVariable(key: "DATABASE_URL", isRequired: true, isEncrypted: true, description: "Database connection URL", variableType: .secret),
        ]),
        ("Python / FastAPI", "python", "fastapi", "A FastAPI service run by uvicorn.", [
            TemplateVariable(key: "PORT", defaultValue: "8000", isRequired: true, description: "Port uvicorn listens on", variableType: .number),
            TemplateVariable(key: "WEB_CONCURRENCY", defaultValue: "2", description: "Number of uvicorn workers", variableType: .number),
            TemplateVariable(key: "DATABASE_URL", isRequired: true, isEncrypted: true, description: "Database connection URL", variableType: .secret),
            TemplateVariable(key: "LOG_LEVEL", defaultValue: "info", description: "Logging verbosity"),
        ]),
        ("Ruby on Rails", "ruby", "rails", "A Ruby on Rails application.", [
            TemplateVariable(key: "RAILS_ENV", defaultValue: "production", isRequired: true, description: "Rails environment"),
            TemplateVariable(key: "SECRET_KEY_BASE", isRequired: true, isEncrypted: true, description: "Rails secret_key_base", variableType: .secret),
            TemplateVariable(key: "RAILS_LOG_TO_STDOUT", defaultValue: "true", description: "Log to standard output", variableType: .boolean),
            TemplateVariable(key: "DATABASE_URL", isRequired: true, isEncrypted: true, description: "Database connection URL", variableType: .secret),
            TemplateVariable(key: "PORT", defaultValue: "3000", description: "Port puma listens on", variableType: .number),
        ]),
        ("Go", "go", "go", "A Go HTTP service.", [
            TemplateVariable(key: "PORT", defaultValue: "8080", isRequired: true, description: "Port the server listens on", variableType: .number),
            TemplateVariable(key: "GOMAXPROCS", description: "Upper bound on OS threads running Go code", variableType: .number),
            TemplateVariable(key: "DATABASE_URL", isEncrypted: true, description: "Database connection URL", variableType: .secret),
        ]),
        ("Java / Spring Boot", "java", "spring-boot", "A Spring Boot application.", [
            TemplateVariable(key: "SPRING_PROFILES_ACTIVE", defaultValue: "prod", isRequired: true, description: "Active Spring profiles"),
            TemplateVariable(key: "SERVER_PORT", defaultValue: "8080", isRequired: true, description: "Port the server listens on", variableType: .number),
            TemplateVariable(key: "SPRING_DATASOURCE_URL", isRequired: true, description: "JDBC URL", examples: ["jdbc:postgresql://db:5432/app"]),
            TemplateVariable(key: "SPRING_DATASOURCE_PASSWORD", isRequired: true, isEncrypted: true, description: "Database password", variableType: .secret),
            TemplateVariable(key: "JAVA_OPTS", defaultValue: "-XX:MaxRAMPercentage=75", description: "JVM options"),
        ]),
        ("Generic Docker", "docker", "docker", "Any containerised app: a port and a log level.", [
            TemplateVariable(key: "PORT", defaultValue: "8080", isRequired: true, description: "Port the app listens on", variableType: .number),
            TemplateVariable(key: "LOG_LEVEL", defaultValue: "info", description: "Logging verbosity"),
        ]),
    ]

    static func templates(now: Date) -> [ConfigTemplate] {
        all.map { entry in
            ConfigTemplate(
                id: UUID().uuidString.lowercased(), name: entry.name, description: entry.description, category: entry.category,
                isOfficial: true, usageCount: 0,
                templateData: TemplateData(variables: entry.variables, environments: EnvironmentName.allCases, framework: entry.framework),
                createdAt: now, updatedAt: now)
        }
    }
}
