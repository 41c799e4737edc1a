#ifndef CBRIDGE_CRYPTO_SHIM_H
#define CBRIDGE_CRYPTO_SHIM_H
#include <stddef.h>
#include <openssl/sha.h>

/// SHA-256 of `count` bytes at `data` into the 32 bytes at `digest` (OpenSSL's one-shot SHA256(),
/// which OpenSSL 3 keeps undeprecated). A wrapper so Swift's `SHA256` type does not clash with it.
static inline void cbridge_sha256(const void *data, size_t count, unsigned char digest[32]) {
    SHA256((const unsigned char *)data, count, digest);
}
#endif
