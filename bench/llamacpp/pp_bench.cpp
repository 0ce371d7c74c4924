// Prompt-processing throughput of llama.cpp (libllama), measured like `wledger-bench prompt`:
// one llama_decode of N ids (the same 64-bit LCG sequence) on a cleared KV cache, logits for the
// last position only (llama_batch_get_one, as llama-bench's pp test), n_batch = n_ubatch = 512
// (llama-bench's default ubatch). Best wall and process-CPU time of `repeat` runs after one
// warm-up. Used because llama-bench (which needs llama.cpp's large `common` library) could not
// be built in time on the shared machine; same library, same graph.
//
// Build: g++ -O2 -std=c++17 pp_bench.cpp -I$SRC/include -I$SRC/ggml/include -L$SRC/build/bin \
//          -lllama -lggml -lggml-base -Wl,-rpath,$SRC/build/bin -o pp_bench
// Usage: pp_bench MODEL.gguf TOKENS THREADS REPEAT
#include <llama.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

static double wall() { timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
static double cpu() { timespec ts; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
static void quiet(ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc != 5) { fprintf(stderr, "usage: pp_bench MODEL.gguf TOKENS THREADS REPEAT\n"); return 2; }
    const int n = atoi(argv[2]), threads = atoi(argv[3]), repeat = atoi(argv[4]);
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "pp_bench: cannot load %s\n", argv[1]); return 1; }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n + 16; cp.n_batch = 512; cp.n_ubatch = 512;
    cp.n_threads = threads; cp.n_threads_batch = threads;
    llama_context * ctx = llama_init_from_model(model, cp);
    const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    std::vector<llama_token> ids(n);
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = 100 + (llama_token)((state >> 33) % (uint64_t)(vocab - 200));
    }
    double best = 1e30, bestCPU = 1e30, checksum = 0;
    for (int r = 0; r <= repeat; r++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        const double t0 = wall(), c0 = cpu();
        for (int s = 0; s < n; s += 512) {
            const int m = std::min(512, n - s);
            if (llama_decode(ctx, llama_batch_get_one(ids.data() + s, m)) != 0) { fprintf(stderr, "pp_bench: decode failed\n"); return 1; }
        }
        llama_synchronize(ctx);
        const double t = wall() - t0, c = cpu() - c0;
        checksum += llama_get_logits_ith(ctx, -1)[0];
        if (r > 0) { best = std::min(best, t); bestCPU = std::min(bestCPU, c); }
    }
    printf("{\"benchmark\":\"llama.cpp-prompt\",\"tokens\":%d,\"threads\":%d,\"repeats\":%d,\"bestSeconds\":%.6f,"
           "\"bestCPUSeconds\":%.6f,\"tokensPerSecond\":%.3f,\"checksum\":%.6f,\"system\":\"%s\"}\n",
           n, threads, repeat, best, bestCPU, n / best, checksum, llama_print_system_info());
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
