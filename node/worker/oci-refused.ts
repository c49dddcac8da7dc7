/** Why an OCI image is refused: the codes the native executor reports (oci-image.ts, image-tar.ts). */
export type OciRefusal =
  | 'OCI_BAD_LAYOUT' | 'OCI_BLOB_DIGEST' | 'OCI_NO_PLATFORM' | 'OCI_TOO_LARGE' | 'OCI_NO_COMMAND' | 'OCI_UNPACK_FAILED'

export class OciRefused extends Error {
  constructor (readonly code: OciRefusal, message: string) { super(message) }
}
