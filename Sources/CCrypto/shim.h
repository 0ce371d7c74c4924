/* SHA-256 through OpenSSL's direct SHA256_* functions: the EVP interface looks the algorithm up
 * through OpenSSL 3's provider machinery, whose first use initializes it (≈ 0.4–0.9 ms of every
 * wledger process that hashes anything, measured here); the direct functions run the same
 * SHA-NI code without it. They are deprecated in OpenSSL 3, hence the wrappers. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdlib.h>

typedef struct wl_sha256 wl_sha256;

static inline wl_sha256 *wl_sha256_new(void) {
    SHA256_CTX *c = malloc(sizeof(SHA256_CTX));
    if (c) SHA256_Init(c);
    return (wl_sha256 *)c;
}
static inline void wl_sha256_update(wl_sha256 *c, const void *data, size_t n) { SHA256_Update((SHA256_CTX *)c, data, n); }
static inline void wl_sha256_final(wl_sha256 *c, unsigned char out[32]) { SHA256_Final(out, (SHA256_CTX *)c); }
static inline void wl_sha256_free(wl_sha256 *c) { free(c); }
static inline void wl_sha256_oneshot(const void *data, size_t n, unsigned char out[32]) {
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, n);
    SHA256_Final(out, &c);
}
