// Generated from openapi/openapi.yaml by `scripts/schemathesis --embed`; do not edit.
// EdgeTests checks that the two agree.

enum OpenAPIDocument {
    static let yaml = #"""
openapi: 3.1.0
info:
  title: CodeRunner controller API
  version: 0.1.0
  description: |
    The coderunner-controller HTTP API: users, projects, encrypted environment configuration, templates,
    audit, deployments and the agents' config endpoint.

    Every JSON answer is the envelope `{success, data, error, message, timestamp}`: `data` on success,
    `error` (a human-readable message) on failure. Status codes: 400 validation (the error starts with
    "validation failed" and names the field), 401 missing/invalid token, 403 not an administrator or
    registration refused (the reason says why), 404 unknown route or another user's resource ("... not found"),
    409 conflict or a corrupted (tampered) ciphertext ("corrupted: ..."), 413 body over 1 MiB, 429 too many
    attempts or queries (with Retry-After in seconds).

    Secrets (variableType `secret`, or `isEncrypted`) are never returned in plaintext by the user API:
    their `value` is the mask `********` and `isMasked` is true, unless the owner passes `reveal=true`,
    which is audited. The agents' endpoint returns decrypted values to the deployment's agent token only.
servers:
  - url: http://127.0.0.1:8480
security:
  - sessionToken: []
tags:
  - name: health
  - name: auth
  - name: projects
  - name: config
  - name: templates
  - name: audit
  - name: deployments
  - name: agent
  - name: admin
paths:
  /healthz:
    get:
      tags: [health]
      operationId: health
      security: []
      responses:
        "200":
          description: The controller is up.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/StatusEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/openapi.yaml:
    get:
      tags: [health]
      operationId: openapiDocument
      security: []
      responses:
        "200":
          description: This document.
          content:
            application/yaml:
              schema: {type: object, description: "This OpenAPI document (a YAML mapping)."}
        default: {$ref: "#/components/responses/Error"}
  /api/auth/register:
    post:
      tags: [auth]
      operationId: register
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Credentials"}
      description: |
        Who may register is the operator's choice (`serve --registration`): by default only the first user
        (the administrator); `open`: anyone; `closed`: nobody; `invite`: whoever sends an unused `inviteCode`
        an administrator created (the first user needs none). A refusal is 403 with the reason. An address
        that cannot be registered (it has an account) is 409 "registration failed: ...", a message that does
        not say why. Attempts count against the per-address login limit (429 with Retry-After).
      responses:
        "201":
          description: Registered. The first user (or the one named by --admin-email) is the administrator.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/UserEnvelope"}
        "403":
          description: Registration is closed, or needs a valid invite code.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ErrorEnvelope"}
        "429":
          description: Too many login or registration attempts from this address.
          headers:
            Retry-After:
              schema: {type: string}
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ErrorEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/auth/invites:
    post:
      tags: [auth]
      operationId: createInvite
      description: |
        A single-use invite code for `--registration invite` (administrators only; 403 otherwise), valid for
        7 days and shown only once (the controller keeps its SHA-256). Audited.
      responses:
        "201":
          description: The invite.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/InviteEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/auth/login:
    post:
      tags: [auth]
      operationId: login
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Credentials"}
      responses:
        "200":
          description: A session token (256 random bits, expires after 24 h). A wrong password, or an unknown address, is 401 "Invalid credentials" (after the same bcrypt work either way).
          content:
            application/json:
              schema: {$ref: "#/components/schemas/SessionEnvelope"}
        "429":
          description: Too many login or registration attempts from this address.
          headers:
            Retry-After:
              schema: {type: string}
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ErrorEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/auth/me:
    get:
      tags: [auth]
      operationId: me
      responses:
        "200":
          description: The session's user.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/UserEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/auth/logout:
    post:
      tags: [auth]
      operationId: logout
      responses:
        "200":
          description: The session token is revoked.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/MessageEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/projects:
    get:
      tags: [projects]
      operationId: listProjects
      responses:
        "200":
          description: The caller's projects.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ProjectListEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    post:
      tags: [projects]
      operationId: createProject
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ProjectInput"}
      responses:
        "201":
          description: Created.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ProjectEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/projects/{id}:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    get:
      tags: [projects]
      operationId: getProject
      responses:
        "200":
          description: The project.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ProjectEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    put:
      tags: [projects]
      operationId: updateProject
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ProjectInput"}
      responses:
        "200":
          description: Updated.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ProjectEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    delete:
      tags: [projects]
      operationId: deleteProject
      responses:
        "200":
          description: Deleted with its configs and deployments (the audit log stays).
          content:
            application/json:
              schema: {$ref: "#/components/schemas/MessageEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/config/projects/{projectId}/environments:
    parameters:
      - {$ref: "#/components/parameters/ProjectId"}
    get:
      tags: [config]
      operationId: listEnvironments
      responses:
        "200":
          description: The project's environment configs, secrets masked.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/EnvironmentConfigListEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    post:
      tags: [config]
      operationId: createEnvironment
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/CreateEnvironment"}
      responses:
        "201":
          description: Created; (project, environment, name) is unique (409 otherwise).
          content:
            application/json:
              schema: {$ref: "#/components/schemas/EnvironmentConfigEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/config/environments/{configId}:
    parameters:
      - {$ref: "#/components/parameters/ConfigId"}
      - {$ref: "#/components/parameters/Reveal"}
    get:
      tags: [config]
      operationId: getEnvironment
      responses:
        "200":
          description: The config with its variables; secrets masked unless reveal=true (audited).
          content:
            application/json:
              schema: {$ref: "#/components/schemas/EnvironmentConfigEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/config/environments/{configId}/variables/{key}:
    parameters:
      - {$ref: "#/components/parameters/ConfigId"}
      - name: key
        in: path
        required: true
        schema: {type: string, pattern: "^[A-Za-z_][A-Za-z0-9_]*$", maxLength: 255}
    put:
      tags: [config]
      operationId: setVariable
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/VariableInput"}
      responses:
        "200":
          description: Created or updated (secrets masked). Bumps the version of the environment's deployments.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/EnvironmentVariableEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    delete:
      tags: [config]
      operationId: deleteVariable
      responses:
        "200":
          description: Deleted.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/MessageEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/config/environments/{configId}/export:
    parameters:
      - {$ref: "#/components/parameters/ConfigId"}
      - {$ref: "#/components/parameters/Reveal"}
      - name: format
        in: query
        schema: {type: string, enum: [dotenv, json], default: dotenv}
    get:
      tags: [config]
      operationId: exportEnvironment
      responses:
        "200":
          description: The variables as a dotenv file (content) or an object (variables); secrets redacted unless reveal=true.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ExportEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/config/environments/{configId}/import:
    parameters:
      - {$ref: "#/components/parameters/ConfigId"}
    post:
      tags: [config]
      operationId: importEnvironment
      description: |
        A dotenv file (any content type but JSON) or a flat JSON object. Existing variables keep their type and
        encryption; new ones are strings. A value equal to the mask for an existing secret is skipped.
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              propertyNames: {pattern: "^[A-Za-z_][A-Za-z0-9_]*$", maxLength: 255}
              additionalProperties:
                anyOf:
                  - {type: string, maxLength: 65536}
                  - {type: number}
                  - {type: boolean}
          text/plain:
            schema: {type: string}
      responses:
        "200":
          description: Imported, all or nothing.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ImportEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/config/templates:
    get:
      tags: [templates]
      operationId: listTemplates
      parameters:
        - name: category
          in: query
          schema: {type: string}
      responses:
        "200":
          description: Official templates and the caller's own.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/TemplateListEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    post:
      tags: [templates]
      operationId: createTemplate
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/CreateTemplate"}
      responses:
        "201":
          description: A custom template, visible to its creator. Names are unique per owner (409 for a second one of the same name), so another user's template of that name is neither refused nor revealed.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/TemplateEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/config/projects/{projectId}/apply-template:
    parameters:
      - {$ref: "#/components/parameters/ProjectId"}
    post:
      tags: [templates]
      operationId: applyTemplate
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ApplyTemplate"}
      responses:
        "201":
          description: |
            A new config from the template. Required variables without a value give 400 listing every missing
            key, and nothing is written.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/EnvironmentConfigEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/config/deployments/{deploymentId}/reload:
    parameters:
      - name: deploymentId
        in: path
        required: true
        schema: {type: string}
    post:
      tags: [config]
      operationId: reloadDeployment
      responses:
        "200":
          description: The deployment's version is bumped; its waiting agents wake up.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ReloadEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/config/projects/{projectId}/audit:
    parameters:
      - {$ref: "#/components/parameters/ProjectId"}
      - name: limit
        in: query
        schema: {type: integer, minimum: 1, maximum: 1000, default: 100}
    get:
      tags: [audit]
      operationId: listAudit
      responses:
        "200":
          description: The project's audit entries, newest first.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AuditListEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/config/projects/{projectId}/audit/verify:
    parameters:
      - {$ref: "#/components/parameters/ProjectId"}
    get:
      tags: [audit]
      operationId: verifyAudit
      responses:
        "200":
          description: Whether the project's hash chain is intact, and where it breaks.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ChainReportEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments:
    get:
      tags: [deployments]
      operationId: listDeployments
      responses:
        "200":
          description: The caller's deployments.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/DeploymentListEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    post:
      tags: [deployments]
      operationId: createDeployment
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/CreateDeployment"}
      responses:
        "201":
          description: Created with status PENDING; data.agentToken is shown only here.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/DeploymentEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    get:
      tags: [deployments]
      operationId: getDeployment
      responses:
        "200":
          description: The deployment.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/DeploymentEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    put:
      tags: [deployments]
      operationId: updateDeployment
      description: Renames the deployment or changes its resource limits; instances started afterwards get the new limits.
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/UpdateDeployment"}
      responses:
        "200":
          description: The updated deployment.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/DeploymentEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/status:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    get:
      tags: [deployments]
      operationId: getDeploymentStatus
      responses:
        "200":
          description: The deployment's status.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/DeploymentStatusEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/agent-token:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    post:
      tags: [deployments]
      operationId: reissueAgentToken
      responses:
        "201":
          description: A new agent token; the previous ones are revoked.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/IssuedTokenEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    delete:
      tags: [deployments]
      operationId: revokeAgentTokens
      responses:
        "200":
          description: Every agent token of the deployment is revoked.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/MessageEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/agent/v1/config:
    get:
      tags: [agent]
      operationId: agentConfig
      security:
        - agentToken: []
      description: |
        The deployment's decrypted configuration. A blocking query: with `index`, the request is held until the
        version is above it or `wait` passes (default 30s, capped at 5m), then answers the current version.
        The X-CodeRunner-Index header repeats the version. When the controller shuts down, held queries end
        at once with 503 (retry with backoff). When the token is revoked, its held queries end at once with 401.
        One token holds at most `--max-polls-per-token` queries at once (default 64); one more is 429.
      parameters:
        - name: index
          in: query
          schema: {type: integer, format: int64, minimum: 0}
        - name: wait
          in: query
          schema: {type: string, pattern: "^[0-9]{1,9}(ms|s|m|h)?$"}
      responses:
        "200":
          description: The config at its current version.
          headers:
            X-CodeRunner-Index:
              schema: {type: string}
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AgentConfigEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/instances:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    get:
      tags: [deployments]
      operationId: listDeploymentInstances
      description: |
        The deployment's registered agents, newest registration first, with the config version each runs and its
        state. `stale` is true once three heartbeat intervals passed without a heartbeat.
      responses:
        "200":
          description: The instances.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/InstanceListEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/agent/v1/register:
    post:
      tags: [agent]
      operationId: agentRegister
      security:
        - agentToken: []
      description: Registers (or re-registers) an instance of the token's deployment.
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/AgentRegistration"}
      responses:
        "201":
          description: A new instance.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AgentRegistrationAcceptedEnvelope"}
        "200":
          description: A known instance, registered again.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AgentRegistrationAcceptedEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/agent/v1/heartbeat:
    post:
      tags: [agent]
      operationId: agentHeartbeat
      security:
        - agentToken: []
      description: The instance is alive. 404 ("instance not found") tells the agent to register again.
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/AgentHeartbeat"}
      responses:
        "200":
          description: Recorded.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/MessageEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/agent/v1/reports:
    post:
      tags: [agent]
      operationId: agentReport
      security:
        - agentToken: []
      description: |
        What became of a config version on an instance. `invalid` and `rolled_back` are audited
        (config_invalid, config_rolled_back) and shown as the instance's lastReport.
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ConfigReport"}
      responses:
        "200":
          description: Recorded.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/MessageEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/admin/keys/rotate:
    post:
      tags: [admin]
      operationId: rotateKeys
      description: Administrator only. Adds a data-key version and rewraps every secret to it in one transaction.
      responses:
        "200":
          description: Rotated. Corrupted secrets are left untouched and listed.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/RotationEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/policies:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    get:
      tags: [scaling]
      operationId: listScalingPolicies
      description: "The deployment's scaling policies (README.md, Scaling policies)."
      responses:
        "200":
          description: "The policies."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ScalingPolicyListEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    post:
      tags: [scaling]
      operationId: createScalingPolicy
      description: "Adds a policy; a 400 names the offending field, a 409 a duplicate name."
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ScalingPolicy"}
      responses:
        "201":
          description: "The stored policy."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ScalingPolicyEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/policies/{policyId}:
    parameters:
      - {$ref: "#/components/parameters/Id"}
      - {name: policyId, in: path, required: true, schema: {type: string}}
    get:
      tags: [scaling]
      operationId: getScalingPolicy
      description: "One policy."
      responses:
        "200":
          description: "The policy."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ScalingPolicyEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    put:
      tags: [scaling]
      operationId: updateScalingPolicy
      description: "Replaces the policy document."
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ScalingPolicy"}
      responses:
        "200":
          description: "The stored policy."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ScalingPolicyEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    delete:
      tags: [scaling]
      operationId: deleteScalingPolicy
      description: "Deletes the policy (recorded as a policy_change event)."
      responses:
        "200":
          description: "Deleted."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/MessageEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/events:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    get:
      tags: [scaling]
      operationId: listScalingEvents
      description: "Scaling events, newest first, paged by sequence."
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 500, default: 50}}
        - {name: before, in: query, description: A nextCursor from the previous page., schema: {type: integer, format: int64, minimum: 1}}
      responses:
        "200":
          description: "A page of events."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ScalingEventPageEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/dry-run:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    post:
      tags: [scaling]
      operationId: scalingDryRun
      description: "The decision the scaler would make now, with every policy's verdict; nothing is executed."
      responses:
        "200":
          description: "The decision."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ScalingDecisionEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/override:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    post:
      tags: [scaling]
      operationId: scalingOverride
      description: "Sets the instance count by hand (event_type manual_override). 502 when the executor failed: an error envelope whose data is the recorded event. 409 while a scaling runs, or when the local executor would have no command to run."
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ScalingOverride"}
      responses:
        "200":
          description: "The recorded event."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ScalingEventEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/status:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    get:
      tags: [scaling]
      operationId: scalingStatus
      description: "The instance count, whether a scaling runs, the latest sample and each polled instance's freshness."
      responses:
        "200":
          description: "The scaler's view."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AnyEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/pricing:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    get:
      tags: [scaling]
      operationId: getScalingPricing
      description: "Price per instance and notification URL."
      responses:
        "200":
          description: "The settings."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ScalingSettingsEnvelope"}
        default: {$ref: "#/components/responses/Error"}
    put:
      tags: [scaling]
      operationId: setScalingPricing
      description: "Price per instance-hour = cpuCores × pricePerCoreHour + memoryGB × pricePerGBHour."
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ScalingPricing"}
      responses:
        "200":
          description: "The settings."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ScalingSettingsEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/notification:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    put:
      tags: [scaling]
      operationId: setScalingNotification
      description: "URL that receives a signed JSON POST (X-CodeRunner-Signature: sha256=<hex HMAC>) after every scaling; null removes it."
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ScalingNotificationSettings"}
      responses:
        "200":
          description: "The settings."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ScalingSettingsEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/costs:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    get:
      tags: [scaling]
      operationId: scalingCosts
      description: "cost_analytics rollups of instance-hours × price."
      parameters:
        - {name: period, in: query, schema: {type: string, enum: [hour, day, week, month], default: hour}}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000, default: 48}}
      responses:
        "200":
          description: "Periods, oldest first."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AnyListEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/recommendations:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    get:
      tags: [scaling]
      operationId: scalingRecommendations
      description: "right_sizing (p95 utilization) and schedule_optimization (idle hours), each with confidence and estimated monthly savings; 409 without pricing."
      responses:
        "200":
          description: "Recommendations."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AnyListEnvelope"}
        default: {$ref: "#/components/responses/Error"}
  /api/deployments/{id}/scaling/backtest:
    parameters:
      - {$ref: "#/components/parameters/Id"}
    post:
      tags: [scaling]
      operationId: scalingBacktest
      description: "Replays the recorded history through the same Backtest code as `coderunner-controller simulate`."
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ScalingBacktestInput"}
      responses:
        "200":
          description: "The backtest result."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AnyEnvelope"}
        default: {$ref: "#/components/responses/Error"}
components:
  securitySchemes:
    sessionToken:
      type: http
      scheme: bearer
      description: A session token from POST /api/auth/login (crt_ + 64 hex digits).
    agentToken:
      type: http
      scheme: bearer
      description: A deployment's agent token (cra_ + 64 hex digits).
  parameters:
    Id:
      name: id
      in: path
      required: true
      schema: {type: string}
    ProjectId:
      name: projectId
      in: path
      required: true
      schema: {type: string}
    ConfigId:
      name: configId
      in: path
      required: true
      schema: {type: string}
    Reveal:
      name: reveal
      in: query
      schema: {type: boolean, default: false}
  responses:
    Error:
      description: An error envelope (400, 401, 403, 404, 409, 413, 429, 503).
      content:
        application/json:
          schema: {$ref: "#/components/schemas/ErrorEnvelope"}
  schemas:
    Timestamp: {type: string, format: date-time}
    ErrorEnvelope:
      type: object
      required: [success, error, timestamp]
      properties:
        success: {const: false}
        error: {type: string}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    MessageEnvelope:
      type: object
      required: [success, timestamp]
      properties:
        success: {const: true}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    Credentials:
      type: object
      required: [email, password]
      properties:
        email: {type: string, format: email}
        password: {type: string, minLength: 8, maxLength: 72}
        inviteCode: {type: string, description: "Required by registration under --registration invite (not for the first user)."}
    Invite:
      type: object
      required: [id, code, expiresAt]
      properties:
        id: {type: string}
        code: {type: string, description: "cri_ and 64 hex digits; shown only once."}
        expiresAt: {$ref: "#/components/schemas/Timestamp"}
    User:
      type: object
      required: [id, email, isAdmin, createdAt]
      properties:
        id: {type: string}
        email: {type: string}
        isAdmin: {type: boolean}
        createdAt: {$ref: "#/components/schemas/Timestamp"}
    Session:
      type: object
      required: [token, expiresAt, user]
      properties:
        token: {type: string}
        expiresAt: {$ref: "#/components/schemas/Timestamp"}
        user: {$ref: "#/components/schemas/User"}
    ProjectInput:
      type: object
      required: [name]
      properties:
        name: {type: string, minLength: 1, maxLength: 255}
        description: {type: string, maxLength: 4096}
    Project:
      type: object
      required: [id, ownerId, name, createdAt, updatedAt]
      properties:
        id: {type: string}
        ownerId: {type: string}
        name: {type: string}
        description: {type: string}
        createdAt: {$ref: "#/components/schemas/Timestamp"}
        updatedAt: {$ref: "#/components/schemas/Timestamp"}
    Environment: {type: string, enum: [development, staging, production]}
    VariableType: {type: string, enum: [string, number, boolean, json, url, secret]}
    VariableInput:
      type: object
      required: [value]
      properties:
        key: {type: string}
        value: {type: string, maxLength: 65536}
        isEncrypted: {type: boolean}
        isRequired: {type: boolean}
        description: {type: string, maxLength: 4096}
        variableType: {$ref: "#/components/schemas/VariableType"}
    EnvironmentVariable:
      type: object
      required: [id, configId, key, value, isEncrypted, isRequired, variableType, isMasked, createdAt, updatedAt]
      properties:
        id: {type: string}
        configId: {type: string}
        key: {type: string}
        value: {type: string, description: "The value, or ******** for a secret unless revealed."}
        isEncrypted: {type: boolean}
        isRequired: {type: boolean}
        description: {type: string}
        variableType: {$ref: "#/components/schemas/VariableType"}
        isMasked: {type: boolean}
        createdAt: {$ref: "#/components/schemas/Timestamp"}
        updatedAt: {$ref: "#/components/schemas/Timestamp"}
    CreateEnvironment:
      type: object
      required: [environment, name]
      properties:
        environment: {$ref: "#/components/schemas/Environment"}
        name: {type: string, minLength: 1, maxLength: 255}
        description: {type: string}
        isActive: {type: boolean}
        variables:
          type: array
          items:
            allOf:
              - {$ref: "#/components/schemas/VariableInput"}
              - {required: [key]}
    EnvironmentConfig:
      type: object
      required: [id, projectId, environment, name, isActive, variables, createdAt, updatedAt]
      properties:
        id: {type: string}
        projectId: {type: string}
        environment: {$ref: "#/components/schemas/Environment"}
        name: {type: string}
        description: {type: string}
        isActive: {type: boolean}
        variables:
          type: array
          items: {$ref: "#/components/schemas/EnvironmentVariable"}
        createdAt: {$ref: "#/components/schemas/Timestamp"}
        updatedAt: {$ref: "#/components/schemas/Timestamp"}
    TemplateVariable:
      type: object
      required: [key, isRequired, isEncrypted, description, variableType]
      properties:
        key: {type: string, pattern: "^[A-Za-z_][A-Za-z0-9_]*$", maxLength: 255}
        defaultValue: {type: string}
        isRequired: {type: boolean}
        isEncrypted: {type: boolean}
        description: {type: string}
        variableType: {$ref: "#/components/schemas/VariableType"}
        examples:
          type: array
          items: {type: string}
    TemplateData:
      type: object
      required: [variables, environments]
      properties:
        variables:
          type: array
          items: {$ref: "#/components/schemas/TemplateVariable"}
        environments:
          type: array
          items: {$ref: "#/components/schemas/Environment"}
        framework: {type: string}
    ConfigTemplate:
      type: object
      required: [id, name, description, category, isOfficial, usageCount, templateData, createdAt, updatedAt]
      properties:
        id: {type: string}
        name: {type: string}
        description: {type: string}
        category: {type: string}
        isOfficial: {type: boolean}
        usageCount: {type: integer}
        templateData: {$ref: "#/components/schemas/TemplateData"}
        createdAt: {$ref: "#/components/schemas/Timestamp"}
        updatedAt: {$ref: "#/components/schemas/Timestamp"}
    CreateTemplate:
      type: object
      required: [name, category, templateData]
      properties:
        name: {type: string, minLength: 1, maxLength: 255}
        description: {type: string}
        category: {type: string, minLength: 1, maxLength: 255}
        templateData: {$ref: "#/components/schemas/TemplateData"}
    ApplyTemplate:
      type: object
      required: [templateId, environment]
      properties:
        templateId: {type: string}
        environment: {$ref: "#/components/schemas/Environment"}
        name: {type: string, minLength: 1, maxLength: 255}
        overrides:
          type: object
          additionalProperties: {type: string}
    ExportResult:
      type: object
      required: [configId, format, redacted]
      properties:
        configId: {type: string}
        format: {type: string, enum: [dotenv, json]}
        content: {type: string, description: "The dotenv file (format dotenv)."}
        variables:
          type: object
          additionalProperties: {type: string}
          description: "The variables (format json)."
        redacted:
          type: array
          items: {type: string}
    ImportResult:
      type: object
      required: [imported, skipped]
      properties:
        imported:
          type: array
          items: {type: string}
        skipped:
          type: array
          items: {type: string}
    AuditEntry:
      type: object
      required: [sequence, id, action, resourceType, changes, timestamp, previousHash, hash]
      properties:
        sequence: {type: integer}
        id: {type: string}
        userId: {type: string}
        projectId: {type: string}
        configId: {type: string}
        action: {type: string}
        resourceType: {type: string}
        resourceId: {type: string}
        changes:
          type: object
          additionalProperties: {type: string}
        ipAddress: {type: string}
        userAgent: {type: string}
        timestamp: {type: string}
        previousHash: {type: string}
        hash: {type: string}
    ChainReport:
      type: object
      required: [projectId, valid, entries, breaks]
      properties:
        projectId: {type: string}
        valid: {type: boolean}
        entries: {type: integer}
        breaks:
          type: array
          items:
            type: object
            required: [sequence, id, reason]
            properties:
              sequence: {type: integer}
              id: {type: string}
              reason: {type: string}
    DeploymentStatus: {type: string, enum: [PENDING, PROVISIONING, RUNNING, STOPPED, FAILED]}
    CreateDeployment:
      type: object
      required: [projectId, environment]
      properties:
        projectId: {type: string}
        environment: {$ref: "#/components/schemas/Environment"}
        name: {type: string, minLength: 1, maxLength: 255}
        runtimeType: {type: string, maxLength: 4096}
        command: {type: string, maxLength: 4096}
        cpuLimit: {$ref: "#/components/schemas/CpuLimit"}
        memoryLimit: {$ref: "#/components/schemas/MemoryLimit"}
        pidsLimit: {$ref: "#/components/schemas/PidsLimit"}
    UpdateDeployment:
      type: object
      properties:
        name: {type: string, minLength: 1, maxLength: 255}
        cpuLimit: {$ref: "#/components/schemas/CpuLimit"}
        memoryLimit: {$ref: "#/components/schemas/MemoryLimit"}
        pidsLimit: {$ref: "#/components/schemas/PidsLimit"}
    CpuLimit:
      type: number
      exclusiveMinimum: 0
      maximum: 1024
      description: Cores each instance may use; default the controller's --default-cpu-limit (1).
    MemoryLimit:
      type: integer
      minimum: 4194304
      maximum: 1099511627776
      description: Bytes of memory each instance may use (at least 4 MiB); default the controller's --default-memory-limit (512 MiB).
    PidsLimit:
      type: integer
      minimum: 8
      maximum: 4194304
      description: Processes each instance may run; default the controller's --default-pids-limit (256).
    Deployment:
      type: object
      required: [id, projectId, environment, name, status, configVersion, createdAt, updatedAt, cpuLimit, memoryLimit, pidsLimit]
      properties:
        id: {type: string}
        projectId: {type: string}
        environment: {$ref: "#/components/schemas/Environment"}
        name: {type: string}
        runtimeType: {type: string}
        command: {type: string}
        status: {$ref: "#/components/schemas/DeploymentStatus"}
        configVersion: {type: integer}
        createdAt: {$ref: "#/components/schemas/Timestamp"}
        updatedAt: {$ref: "#/components/schemas/Timestamp"}
        agentToken: {type: string, description: "Only in the answer that created the deployment."}
        cpuLimit: {$ref: "#/components/schemas/CpuLimit"}
        memoryLimit: {$ref: "#/components/schemas/MemoryLimit"}
        pidsLimit: {$ref: "#/components/schemas/PidsLimit"}
    DeploymentStatusData:
      type: object
      required: [id, status, configVersion, updatedAt]
      properties:
        id: {type: string}
        status: {$ref: "#/components/schemas/DeploymentStatus"}
        configVersion: {type: integer}
        updatedAt: {$ref: "#/components/schemas/Timestamp"}
    IssuedToken:
      type: object
      required: [deploymentId, agentToken]
      properties:
        deploymentId: {type: string}
        agentToken: {type: string}
    Reloaded:
      type: object
      required: [deploymentId, version]
      properties:
        deploymentId: {type: string}
        version: {type: integer}
    AgentConfig:
      type: object
      required: [deploymentId, version, checksum, variables, required]
      properties:
        deploymentId: {type: string}
        version: {type: integer}
        checksum:
          type: string
          pattern: "^[0-9a-f]{64}$"
          description: |
            SHA-256 over, for each key in ascending byte order, "<key byte count>:<key><value byte count>:<value>".
        variables:
          type: object
          additionalProperties: {type: string}
        required:
          type: array
          items: {type: string}
        reloadVersion:
          type: integer
          description: The version of the latest explicit reload; absent when there was none.
    AgentRegistration:
      type: object
      required: [instanceId, agentVersion, hostname, pid, state]
      properties:
        instanceId: {type: string, pattern: "^[A-Za-z0-9._:-]{1,128}$"}
        metricsUrl: {type: string, pattern: "^https?://", maxLength: 2048}
        agentVersion: {type: string, minLength: 1, maxLength: 2048}
        hostname: {type: string, minLength: 1, maxLength: 2048}
        pid: {type: integer, minimum: 1, maximum: 2147483647}
        configVersion: {type: integer}
        state: {type: string, pattern: "^[A-Za-z0-9._:-]{1,128}$"}
    AgentRegistrationAccepted:
      type: object
      required: [instanceId, heartbeatIntervalSeconds]
      properties:
        instanceId: {type: string}
        heartbeatIntervalSeconds: {type: number}
    AgentRegistrationAcceptedEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/AgentRegistrationAccepted"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    AgentHeartbeat:
      type: object
      required: [instanceId, state]
      properties:
        instanceId: {type: string, pattern: "^[A-Za-z0-9._:-]{1,128}$"}
        state: {type: string, pattern: "^[A-Za-z0-9._:-]{1,128}$"}
        configVersion: {type: integer}
        configChecksum: {type: string, pattern: "^[A-Za-z0-9._:-]{1,128}$"}
    ConfigReport:
      type: object
      required: [instanceId, version, result]
      properties:
        instanceId: {type: string, pattern: "^[A-Za-z0-9._:-]{1,128}$"}
        version: {type: integer}
        checksum: {type: string, pattern: "^[A-Za-z0-9._:-]{1,128}$"}
        result: {type: string, enum: [applied, unchanged, invalid, rolled_back]}
        reason: {type: string, minLength: 1, maxLength: 2048}
    Instance:
      type: object
      required: [deploymentId, instanceId, agentVersion, hostname, pid, state, registeredAt, lastHeartbeatAt, stale]
      properties:
        deploymentId: {type: string}
        instanceId: {type: string}
        metricsUrl: {type: string}
        agentVersion: {type: string}
        hostname: {type: string}
        pid: {type: integer}
        configVersion: {type: integer}
        configChecksum: {type: string}
        state: {type: string}
        registeredAt: {$ref: "#/components/schemas/Timestamp"}
        lastHeartbeatAt: {$ref: "#/components/schemas/Timestamp"}
        stale: {type: boolean}
        lastReport:
          type: object
          required: [version, result, reportedAt]
          properties:
            version: {type: integer}
            checksum: {type: string}
            result: {type: string}
            reason: {type: string}
            reportedAt: {$ref: "#/components/schemas/Timestamp"}
    InstanceListEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data:
          type: array
          items: {$ref: "#/components/schemas/Instance"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    Rotation:
      type: object
      required: [version, rewrapped, corrupted]
      properties:
        version: {type: integer}
        rewrapped: {type: integer}
        corrupted:
          type: array
          items: {type: string}
    Status:
      type: object
      required: [status]
      properties:
        status: {type: string}
    StatusEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/Status"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    InviteEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/Invite"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    UserEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/User"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    SessionEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/Session"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ProjectEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/Project"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    EnvironmentConfigEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/EnvironmentConfig"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    EnvironmentVariableEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/EnvironmentVariable"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ExportEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/ExportResult"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ImportEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/ImportResult"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    TemplateEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/ConfigTemplate"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ReloadEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/Reloaded"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ChainReportEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/ChainReport"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    DeploymentEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/Deployment"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    DeploymentStatusEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/DeploymentStatusData"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    IssuedTokenEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/IssuedToken"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    AgentConfigEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/AgentConfig"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    RotationEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/Rotation"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ProjectListEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {type: array, items: {$ref: "#/components/schemas/Project"}}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    EnvironmentConfigListEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {type: array, items: {$ref: "#/components/schemas/EnvironmentConfig"}}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    TemplateListEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {type: array, items: {$ref: "#/components/schemas/ConfigTemplate"}}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    AuditListEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {type: array, items: {$ref: "#/components/schemas/AuditEntry"}}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    DeploymentListEnvelope:
      type: object
      required: [success, data, timestamp]
      properties:
        success: {const: true}
        data: {type: array, items: {$ref: "#/components/schemas/Deployment"}}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    AnyEnvelope:
      type: object
      required: [success, timestamp]
      properties:
        success: {const: true}
        data: {type: object}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    AnyListEnvelope:
      type: object
      required: [success, timestamp]
      properties:
        success: {const: true}
        data: {type: array, items: {type: object}}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ScalingPolicy:
      type: object
      description: The policy JSON of README.md, Scaling policies (the plan's ScalingPolicy in camelCase plus options).
      required: [name, policyType]
      properties:
        name: {type: string}
        isEnabled: {type: boolean, default: true}
        policyType: {type: string, enum: [threshold, multi_metric, target_tracking, predictive, scheduled]}
        minInstances: {type: integer, minimum: 1, maximum: 10000, default: 1, description: "At most the controller's --max-instances-per-deployment (default 20)."}
        maxInstances: {type: integer, minimum: 1, maximum: 10000, default: 10, description: "At most the controller's --max-instances-per-deployment (default 20)."}
        scaleUpRules: {type: array, items: {$ref: "#/components/schemas/ScalingRule"}}
        scaleDownRules: {type: array, items: {$ref: "#/components/schemas/ScalingRule"}}
        scaleUpCooldown: {type: number, default: 300}
        scaleDownCooldown: {type: number, default: 600}
        maxHourlyCost: {type: number}
        maxMonthlyCost: {type: number}
        target:
          type: object
          required: [metric, value]
          properties:
            metric: {$ref: "#/components/schemas/ScalingMetric"}
            value: {type: number}
        tolerance: {type: number, default: 0.1}
        scaleDownStabilization: {type: number, default: 300}
        maxScaleUpStep: {type: integer, default: 4}
        maxScaleUpPercent: {type: number, default: 100}
        maxScaleDownStep: {type: integer}
        scaleUpAdjustment: {type: integer, default: 1}
        scaleDownAdjustment: {type: integer, default: 1}
        scaleUpScore: {type: number, default: 0.5}
        scaleDownScore: {type: number, default: 1}
        predictive: {type: object}
        schedules: {type: array, items: {type: object}}
    ScalingMetric: {type: string, enum: [cpu, memory, requests, response_time, connections]}
    ScalingRule:
      type: object
      required: [metric, threshold]
      properties:
        metric: {$ref: "#/components/schemas/ScalingMetric"}
        threshold: {type: number}
        duration: {type: number, default: 0}
        weight: {type: number}
    StoredScalingPolicy:
      type: object
      required: [id, deploymentId, policy, createdAt, updatedAt]
      properties:
        id: {type: string}
        deploymentId: {type: string}
        policy: {$ref: "#/components/schemas/ScalingPolicy"}
        createdAt: {$ref: "#/components/schemas/Timestamp"}
        updatedAt: {$ref: "#/components/schemas/Timestamp"}
    ScalingPolicyEnvelope:
      type: object
      required: [success, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/StoredScalingPolicy"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ScalingPolicyListEnvelope:
      type: object
      required: [success, timestamp]
      properties:
        success: {const: true}
        data: {type: array, items: {$ref: "#/components/schemas/StoredScalingPolicy"}}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ScalingEvent:
      type: object
      required: [id, sequence, deploymentId, eventType, triggerReason, instancesBefore, instancesAfter, success, timestamp]
      properties:
        id: {type: string}
        sequence: {type: integer, format: int64}
        deploymentId: {type: string}
        policyId: {type: string}
        eventType: {type: string, enum: [scale_up, scale_down, policy_change, manual_override]}
        triggerReason: {type: string}
        instancesBefore: {type: integer}
        instancesAfter: {type: integer}
        cpuUsage: {type: number}
        memoryUsage: {type: number}
        requestRate: {type: number}
        responseTime: {type: number}
        connections: {type: number}
        costBefore: {type: number}
        costAfter: {type: number}
        executionTimeMs: {type: integer}
        success: {type: boolean}
        errorMessage: {type: string}
        decision: {type: object}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ScalingEventEnvelope:
      type: object
      required: [success, timestamp]
      properties:
        success: {const: true}
        data: {$ref: "#/components/schemas/ScalingEvent"}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ScalingEventPageEnvelope:
      type: object
      required: [success, timestamp]
      properties:
        success: {const: true}
        data:
          type: object
          required: [events]
          properties:
            events: {type: array, items: {$ref: "#/components/schemas/ScalingEvent"}}
            nextCursor: {type: integer, format: int64}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ScalingDecisionEnvelope:
      type: object
      required: [success, timestamp]
      properties:
        success: {const: true}
        data:
          type: object
          required: [action, currentInstances, targetInstances, reason, confidence, metrics, policies, timestamp]
          properties:
            action: {type: string, enum: [scale_up, scale_down, no_action]}
            currentInstances: {type: integer}
            targetInstances: {type: integer}
            reason: {type: string}
            confidence: {type: number}
            estimatedCostImpact: {type: object}
            metrics: {type: object}
            policies: {type: array, items: {type: object}}
            timestamp: {type: number}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ScalingOverride:
      type: object
      required: [instances]
      properties:
        instances: {type: integer, minimum: 0, maximum: 10000, description: "At most the controller's --max-instances-per-deployment (default 20)."}
        reason: {type: string, maxLength: 255}
    ScalingPricing:
      type: object
      required: [cpuCores, memoryGB, pricePerCoreHour, pricePerGBHour]
      properties:
        cpuCores: {type: number, minimum: 0}
        memoryGB: {type: number, minimum: 0}
        pricePerCoreHour: {type: number, minimum: 0}
        pricePerGBHour: {type: number, minimum: 0}
    ScalingNotificationSettings:
      type: object
      properties:
        url: {type: [string, "null"], format: uri}
    ScalingSettingsEnvelope:
      type: object
      required: [success, timestamp]
      properties:
        success: {const: true}
        data:
          type: object
          required: [currentInstances]
          properties:
            pricing: {$ref: "#/components/schemas/ScalingPricing"}
            notifyUrl: {type: string}
            currentInstances: {type: integer}
        message: {type: string}
        timestamp: {$ref: "#/components/schemas/Timestamp"}
    ScalingBacktestInput:
      type: object
      properties:
        capacity: {type: number, exclusiveMinimum: 0}
        startupSeconds: {type: number, minimum: 0}
        sloUtilization: {type: number, exclusiveMinimum: 0, maximum: 100}
        initialInstances: {type: integer, minimum: 1, maximum: 10000, description: "At most the controller's --max-instances-per-deployment (default 20)."}
        timeline: {type: boolean}
        policies: {type: array, items: {$ref: "#/components/schemas/ScalingPolicy"}}

"""#
}
