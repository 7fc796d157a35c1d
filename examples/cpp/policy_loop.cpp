// A robot control loop in C++17 through picardiff's C ABI: observation -> action chunk, repeated.
//
// Loads a LeRobot Diffusion Policy directory (config.json + model.safetensors, as LeRobot's
// save_pretrained writes it), then every control tick turns the current observation features into
// the policy's global conditioning and samples one action chunk with the Picard sampler under the
// policy's own scheduler (e.g. DDPM-100 with x0 clipping). The model and sampler are made once; a
// tick allocates only the output buffer it reuses.
//
//   policy_loop <policy_dir> [ticks]
//
// Output (stdout): `policy dim=<D> cond_dim=<G> steps=<N>`, one `tick <i> rounds=<R> first=<a0> <a1>`
// line per tick, then `end`. Build like examples/cpp/main.cpp (see scripts/valgrind-cpp.sh).

#include "picardiff.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct ContextFree {
    void operator()(picardiff_context *p) const noexcept { picardiff_context_free(p); }
};
struct ModelFree {
    void operator()(picardiff_model *p) const noexcept { picardiff_model_free(p); }
};
struct SamplerFree {
    void operator()(picardiff_sampler *p) const noexcept { picardiff_sampler_free(p); }
};

std::string last_error() {
    std::string msg(picardiff_last_error_len() + 1, '\0');
    size_t written = 0;
    picardiff_last_error(msg.data(), msg.size(), &written);
    msg.resize(written);
    return msg;
}

void check(picardiff_status status, const char *what) {
    if (status != PICARDIFF_OK) {
        throw std::runtime_error(std::string(what) + ": " + picardiff_status_str(status) + ": " +
                                 last_error());
    }
}

// The robot's observation features at tick `i` (a stand-in for the normalised state, and for
// image features computed once per chunk by the policy's encoder), laid out as the policy's
// global conditioning: n_obs_steps frames of features, concatenated.
void observe(size_t tick, std::vector<float> &cond) {
    for (size_t j = 0; j < cond.size(); ++j) {
        cond[j] = static_cast<float>(0.8 * std::sin(0.3 * double(tick) + 0.7 * double(j)));
    }
}

int run(const char *dir, size_t ticks) {
    picardiff_context *raw_ctx = nullptr;
    check(picardiff_context_new(PICARDIFF_DEVICE_CPU, 0, &raw_ctx), "picardiff_context_new");
    std::unique_ptr<picardiff_context, ContextFree> ctx(raw_ctx);

    picardiff_model *raw_model = nullptr;
    check(picardiff_model_new_file(dir, &raw_model), "picardiff_model_new_file");
    std::unique_ptr<picardiff_model, ModelFree> policy(raw_model);

    // The policy brings its scheduler; the config picks the sampler (batch 1: one robot).
    picardiff_sampler_config cfg;
    check(picardiff_sampler_config_default(&cfg), "picardiff_sampler_config_default");
    cfg.sampler = "picard";
    cfg.batch = 1;
    picardiff_sampler *raw_sampler = nullptr;
    check(picardiff_sampler_new(ctx.get(), &cfg, &raw_sampler), "picardiff_sampler_new");
    std::unique_ptr<picardiff_sampler, SamplerFree> sampler(raw_sampler);

    size_t dim = 0, cond_dim = 0, steps = 0;
    check(picardiff_model_dim(policy.get(), &dim), "picardiff_model_dim");
    check(picardiff_model_cond_dim(policy.get(), &cond_dim), "picardiff_model_cond_dim");
    check(picardiff_sampler_model_steps(sampler.get(), policy.get(), &steps),
          "picardiff_sampler_model_steps");
    std::printf("policy dim=%zu cond_dim=%zu steps=%zu\n", dim, cond_dim, steps);

    std::vector<float> cond(cond_dim), chunk(dim);
    double total_ms = 0.0;
    for (size_t tick = 0; tick < ticks; ++tick) {
        observe(tick, cond);
        picardiff_stats st{};
        const auto t0 = std::chrono::steady_clock::now();
        check(picardiff_sampler_run_cond(sampler.get(), policy.get(), cond.data(), cond.size(),
                                         nullptr, 0, nullptr, 0, chunk.data(), chunk.size(), &st),
              "picardiff_sampler_run_cond");
        total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                        .count();
        // A real loop would now execute the chunk's first n_action_steps actions.
        std::printf("tick %zu rounds=%zu first=%.6g %.6g\n", tick, st.rounds, chunk[0],
                    dim > 1 ? chunk[1] : 0.0f);
    }
    std::printf("end\n");
    std::fprintf(stderr, "%zu action chunks, %.3f ms each on average\n", ticks,
                 ticks ? total_ms / double(ticks) : 0.0);

    // A wrong conditioning width is a status and a message, not a crash.
    std::vector<float> wrong(cond_dim + 1);
    const picardiff_status bad = picardiff_sampler_run_cond(
        sampler.get(), policy.get(), wrong.data(), wrong.size(), nullptr, 0, nullptr, 0,
        chunk.data(), chunk.size(), nullptr);
    std::fprintf(stderr, "expected error: %s: %s\n", picardiff_status_str(bad), last_error().c_str());
    return bad == PICARDIFF_OK ? 1 : 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <policy_dir> [ticks]\n", argv[0]);
        return 2;
    }
    const size_t ticks = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 20;
    try {
        return run(argv[1], ticks);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
