// picardiff from C++17 through the C ABI (include/picardiff.h).
//
// Samples a 2-D Gaussian mixture twice with the same sampler and seed: once with picardiff's
// built-in exact mixture model (given as a JSON string), once with a callback model that computes
// the same mixture's exact noise prediction eps(x, t) in C++. The two runs give nearly the same
// samples. Results go to stdout in a line format that tests/c_abi.rs parses:
//
//   picardiff <version>
//   config <key>=<value> ...
//   run <name> batch=<B> dim=<D> rounds=<R> nfe=<N> host_syncs=<H>
//   sample <i> <x_0> ... <x_{D-1}>        (B lines per run, floats printed with %.9g: exact f32)
//   end
//
// Build (after `cargo build --release`; see scripts/valgrind-cpp.sh and the README):
//   c++ -std=c++17 -O2 -Iinclude examples/cpp/main.cpp -Ltarget/release -lpicardiff
//       -Wl,-rpath,$PWD/target/release -o picardiff-example      (one command line)

#include "picardiff.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// ---- RAII over the C handles -------------------------------------------------------------------

struct ContextFree {
    void operator()(picardiff_context *p) const noexcept { picardiff_context_free(p); }
};
struct ModelFree {
    void operator()(picardiff_model *p) const noexcept { picardiff_model_free(p); }
};
struct SamplerFree {
    void operator()(picardiff_sampler *p) const noexcept { picardiff_sampler_free(p); }
};
using Context = std::unique_ptr<picardiff_context, ContextFree>;
using Model = std::unique_ptr<picardiff_model, ModelFree>;
using Sampler = std::unique_ptr<picardiff_sampler, SamplerFree>;

// This thread's last picardiff error message.
std::string last_error() {
    std::string msg(picardiff_last_error_len() + 1, '\0');
    size_t written = 0;
    picardiff_last_error(msg.data(), msg.size(), &written);
    msg.resize(written);
    return msg;
}

// Throws with the status and picardiff's message unless `status` is PICARDIFF_OK.
void check(picardiff_status status, const char *what) {
    if (status != PICARDIFF_OK) {
        throw std::runtime_error(std::string(what) + ": " + picardiff_status_str(status) + " (" +
                                 std::to_string(static_cast<int>(status)) + "): " + last_error());
    }
}

// ---- The mixture, as JSON for picardiff and as numbers for the callback -------------------------

constexpr const char *kMixtureJson =
    R"({"weights": [0.3, 0.7], "means": [[-2.0, 1.0], [1.5, -1.0]], "stds": [0.4, 0.6]})";

struct Mixture {
    std::vector<double> weights;             // sum to 1
    std::vector<std::vector<double>> means;  // K x D
    std::vector<double> stds;                // K
};

const Mixture kMixture{{0.3, 0.7}, {{-2.0, 1.0}, {1.5, -1.0}}, {0.4, 0.6}};

// What the callback needs: the mixture and the sampler (for alpha_t, sigma_t of its schedule).
struct CallbackData {
    const Mixture *mixture = nullptr;
    const picardiff_sampler *sampler = nullptr;
    size_t calls = 0;
};

// The exact eps-prediction of the mixture under the forward process x_t = a x_0 + s eps:
// q_t = sum_k w_k N(a mu_k, v_k I) with v_k = a^2 s_k^2 + s^2, and
// eps(x, t) = s * sum_k r_k (x - a mu_k) / v_k with r_k the posterior responsibilities.
// A callback must not throw: errors become a non-zero return.
int mixture_eps(const float *x, const float *t, size_t n, size_t dim, float *out, void *user_data,
                void * /*stream: NULL on the CPU*/) noexcept {
    try {
        auto *data = static_cast<CallbackData *>(user_data);
        const Mixture &m = *data->mixture;
        const size_t k_count = m.weights.size();
        if (dim != m.means[0].size()) return 2;
        data->calls++;
        std::vector<double> logit(k_count);
        for (size_t i = 0; i < n; ++i) {
            double alpha = 0.0, sigma = 0.0;
            if (picardiff_sampler_alpha_sigma(data->sampler, t[i], &alpha, &sigma) != PICARDIFF_OK) {
                return 3;
            }
            const float *xi = x + i * dim;
            double max_logit = -INFINITY;
            for (size_t k = 0; k < k_count; ++k) {
                const double v = alpha * alpha * m.stds[k] * m.stds[k] + sigma * sigma;
                double d2 = 0.0;
                for (size_t d = 0; d < dim; ++d) {
                    const double diff = xi[d] - alpha * m.means[k][d];
                    d2 += diff * diff;
                }
                logit[k] = std::log(m.weights[k]) - 0.5 * double(dim) * std::log(v) - d2 / (2.0 * v);
                max_logit = std::max(max_logit, logit[k]);
            }
            double z = 0.0;
            for (size_t k = 0; k < k_count; ++k) z += std::exp(logit[k] - max_logit);
            for (size_t d = 0; d < dim; ++d) {
                double eps = 0.0;
                for (size_t k = 0; k < k_count; ++k) {
                    const double v = alpha * alpha * m.stds[k] * m.stds[k] + sigma * sigma;
                    const double r = std::exp(logit[k] - max_logit) / z;
                    eps += r * (xi[d] - alpha * m.means[k][d]) / v;
                }
                out[i * dim + d] = static_cast<float>(sigma * eps);
            }
        }
        return 0;
    } catch (...) {
        return 1;
    }
}

// ---- Running and printing ------------------------------------------------------------------------

void print_run(const char *name, const std::vector<float> &samples, size_t batch, size_t dim,
               const picardiff_stats &st) {
    std::printf("run %s batch=%zu dim=%zu rounds=%zu nfe=%zu host_syncs=%zu\n", name, batch, dim,
                st.rounds, st.nfe, st.host_syncs);
    for (size_t b = 0; b < batch; ++b) {
        std::printf("sample %zu", b);
        for (size_t d = 0; d < dim; ++d) std::printf(" %.9g", samples[b * dim + d]);
        std::printf("\n");
    }
    std::fprintf(stderr, "%s: %zu rounds, %.2f ms\n", name, st.rounds, st.wall_ms);
}

std::vector<float> sample(const picardiff_sampler *sampler, const picardiff_model *model,
                          picardiff_stats &stats) {
    size_t batch = 0, dim = 0;
    check(picardiff_sampler_shape(sampler, nullptr, &batch), "picardiff_sampler_shape");
    check(picardiff_model_dim(model, &dim), "picardiff_model_dim");
    std::vector<float> out(batch * dim);
    check(picardiff_sampler_run(sampler, model, out.data(), out.size(), &stats),
          "picardiff_sampler_run");
    return out;
}

int run() {
    std::printf("picardiff %s\n", picardiff_version());

    picardiff_context *raw_ctx = nullptr;
    check(picardiff_context_new(PICARDIFF_DEVICE_CPU, 0, &raw_ctx), "picardiff_context_new");
    Context ctx(raw_ctx);

    // A 100-step DDPM on ddpm-linear with the Picard sampler over the whole trajectory.
    picardiff_sampler_config cfg;
    check(picardiff_sampler_config_default(&cfg), "picardiff_sampler_config_default");
    cfg.schedule = "ddpm-linear";
    cfg.steps = 100;
    cfg.rule = "ddpm";
    cfg.sampler = "picard";
    cfg.batch = 16;
    cfg.seed = 42;
    std::printf("config schedule=%s steps=%zu rule=%s sampler=%s window=all tol=default batch=%zu "
                "seed=%llu\n",
                cfg.schedule, cfg.steps, cfg.rule, cfg.sampler, cfg.batch,
                static_cast<unsigned long long>(cfg.seed));

    picardiff_sampler *raw_sampler = nullptr;
    check(picardiff_sampler_new(ctx.get(), &cfg, &raw_sampler), "picardiff_sampler_new");
    Sampler sampler(raw_sampler);

    // Errors come back as a status and a message, e.g. an unknown schedule name:
    picardiff_sampler_config bad = cfg;
    bad.schedule = "ddpm-cosine";
    picardiff_sampler *never = nullptr;
    const picardiff_status st = picardiff_sampler_new(ctx.get(), &bad, &never);
    std::fprintf(stderr, "expected error: %s: %s\n", picardiff_status_str(st), last_error().c_str());
    if (st != PICARDIFF_INVALID_CONFIG || never != nullptr) return 1;

    // 1. The built-in exact mixture model.
    picardiff_model *raw_model = nullptr;
    check(picardiff_model_new_mixture_json(kMixtureJson, std::char_traits<char>::length(kMixtureJson),
                                           &raw_model),
          "picardiff_model_new_mixture_json");
    Model mixture(raw_model);
    picardiff_stats stats_mixture{};
    const std::vector<float> a = sample(sampler.get(), mixture.get(), stats_mixture);

    // 2. The same mixture through a C++ callback.
    CallbackData data;
    data.mixture = &kMixture;
    data.sampler = sampler.get();
    raw_model = nullptr;
    check(picardiff_model_new_callback(mixture_eps, &data, kMixture.means[0].size(),
                                       PICARDIFF_OUTPUT_EPSILON, &raw_model),
          "picardiff_model_new_callback");
    Model callback(raw_model);
    picardiff_stats stats_callback{};
    const std::vector<float> b = sample(sampler.get(), callback.get(), stats_callback);

    size_t batch = 0, dim = 0;
    check(picardiff_sampler_shape(sampler.get(), nullptr, &batch), "picardiff_sampler_shape");
    check(picardiff_model_dim(mixture.get(), &dim), "picardiff_model_dim");
    print_run("mixture", a, batch, dim, stats_mixture);
    print_run("callback", b, batch, dim, stats_callback);
    std::printf("end\n");

    double max_diff = 0.0;
    for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
    std::fprintf(stderr, "callback calls: %zu; max |mixture - callback| = %.3g\n", data.calls,
                 max_diff);
    return 0;
}

}  // namespace

int main() {
    try {
        return run();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
