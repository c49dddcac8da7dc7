/**
 * Public exports of the iexec-p2p package: the node, its configuration and
 * the API client. Wire formats are in `protocols/`, contracts in
 * `contracts-abi/`.
 */
export { IexecNode } from './node.js'
export type { IexecNodeInit } from './node.js'
export { initDataDir, loadDataDir } from './config/index.js'
export { defaultDataDir, dataDirPaths } from './config/paths.js'
export { ApiClient } from './api/client.js'
export { WorkClient, WorkError, isWorkError, defaultWorkClientOptions } from './api/work-client.js'
export type { WorkStatus, WorkView, WorkFailure, WorkParamValue, WorkErrorCode, WaitOptions, SubmitOptions, WorkClientOptions } from './api/work-client.js'
export type { ApiBackend, NodeStatus, PeerView, ResourceView, ResourceQuery } from './api/backend.js'
export { IexecError, isIexecError } from './common/errors.js'
