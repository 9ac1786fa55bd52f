// Sealing: encryption at rest for the controller.
//
// Layers, bottom up (only this module touches OpenSSL or unsafe pointers):
//   AESGCM, SecureRandom, Digest   thin wrappers over OpenSSL's EVP, RAND and HMAC
//   SecretBytes                     raw key material that is wiped (OPENSSL_cleanse) when dropped
//   MasterKey                       the key-encryption key, loaded from a file or the environment
//   StoredDataKey, Keyring          versioned data keys wrapped by the master key; seal/open/rewrap/rotate
//   SealedHeader                    the documented byte layout (README.md, Encryption at rest)
//
// Why not the plan's EncryptionService: it called the deprecated createCipher, which ignores the IV it
// generated and derives key and IV from the password alone (one fixed nonce for every secret: GCM's
// catastrophic failure), used one constant AAD for every row, and its rotation deactivated old keys so
// existing ciphertext became unreadable. Here every seal draws a fresh 96-bit nonce, the AAD binds the row,
// and old versions keep opening until explicitly retired.
