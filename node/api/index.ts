/**
 * The node's local HTTP API (127.0.0.1, bearer token) and its client.
 *
 * The node implements {@link ApiBackend} and calls {@link startApiServer};
 * the CLI's client commands use {@link ApiClient}. Later modules add routes
 * through `ApiServerOptions.routes` (see {@link ApiRoute}).
 *
 * @example
 * ```ts
 * import { startApiServer, ApiClient } from './api/index.js'
 * const server = await startApiServer({ port: 0, token, backend })
 * const status = await new ApiClient(server.url, token).status()
 * await server.close()
 * ```
 */
export { startApiServer, type ApiServer } from './server.js'
export { ApiClient } from './client.js'
export { Router, ApiReply, type ApiRoute, type ApiRequest, type ApiHandler, type HttpMethod } from './router.js'
export { coreRoutes, parseResourceQuery } from './routes/resources.js'
export { ApiError, HttpError, type ApiErrorCode, type ApiErrorBody } from './errors.js'
export { defaultApiServerOptions, defaultApiClientOptions, type ApiServerOptions, type ApiClientOptions } from './options.js'
export type { ApiBackend, NodeStatus, NodeRole, PeerView, ResourceView, ResourceQuery } from './backend.js'
export { API_IDENTITY_PATH, apiIdentityPayload, verifyApiIdentity, type ApiIdentity } from './identity.js'
