// Sealing: encryption at rest for the controller.
//
// Layers, bottom up (only this module touches OpenSSL or unsafe pointers):
//   AESGCM, SecureRandom, Digest   thin wrappers over OpenSSL's EVP, RAND and HMAC
//   SecretBytes                     raw key material that is wiped (OPENSSL_cleanse) when dropped
//   MasterKey                       the key-encryption key, loaded from a file or the environment
//   StoredDataKey, Keyring          versioned data keys wrapped by the master key; seal/open/rewrap/rotate
//   SealedHeader                    the documented byte layout (README.md, Encryption at rest)
//
// What it guards against: a fixed nonce (deriving key and IV from a password alone gives every secret the
// same nonce: GCM's catastrophic failure), one constant AAD for every row (a ciphertext could be moved to
// another row), and a rotation that deactivates old keys (existing ciphertext becomes unreadable). Here
// every seal draws a fresh 96-bit nonce, the AAD binds the row, and old versions keep opening until
// explicitly retired.
