#include "train/trainer.hpp"

#include "data/batch.hpp"
#include "data/dataset.hpp"
#include "experiment/experiment_data.hpp"
#include "experiment/loader.hpp"
#include "experiment/memory_estimate.hpp"
#include "model/expert_load.hpp"
#include "model/explain.hpp"
#include "model/generation.hpp"
#include "model/model.hpp"
#include "model/readout.hpp"
#include "runtime/registry.hpp"
#include "train/autocast_scope.hpp"
#include "train/checkpoint.hpp"
#include "train/data_parallel.hpp"
#include "train/evaluate.hpp"
#include "train/fused_adamw.hpp"
#include "train/lm_head_loss.hpp"
#include "train/lr_schedule.hpp"
#include "train/metrics_log.hpp"
#include "train/mtp_loss.hpp"
#include "train/optimizer.hpp"
#include "train/plot.hpp"
#include "train/random_draws.hpp"
#include "train/row_major_matmul.hpp"
#include "train/run_folder.hpp"
#include "train/step_profiler.hpp"
#include "train/trained_run.hpp"
#include "util/allocator.hpp"
#include "util/atomic_file.hpp"
#include "util/fault_point.hpp"
#include "util/heartbeat.hpp"
#include "util/interrupt_signals.hpp"
#include "util/log.hpp"
#include "util/matmul_rate.hpp"
#include "util/sha256.hpp"
#include "util/system_info.hpp"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace mixlab {
namespace {


// local_rank: the GPU of this process when torchrun starts one per GPU.
torch::Device pick_device(const std::string& name, int local_rank) {
  if (name == "cuda" || (name == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available()) throw std::runtime_error("training.device = \"cuda\" but no CUDA device is available");
    if (local_rank >= static_cast<int>(torch::cuda::device_count()))
      throw std::runtime_error("LOCAL_RANK " + std::to_string(local_rank) + " but this machine has only " +
                               std::to_string(torch::cuda::device_count()) + " CUDA devices");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
  }
  return torch::kCPU;
}

std::string human_time(double s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s) % 3600 / 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  else std::snprintf(buf, sizeof buf, "%.0fs", s);
  return buf;
}

std::vector<torch::Tensor> model_tensors(const Model& model) {
  std::vector<torch::Tensor> all;
  for (const auto& p : model.parameters()) all.push_back(p.tensor);
  return all;
}

nlohmann::json tensor_json(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  if (c.numel() == 1) return c.item<double>();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// What the manifest says about the plugins and parameters of the model.
nlohmann::json model_facts(const Model& model, const ExperimentConfig& config, double& active, double& flops_per_token) {
  nlohmann::json plugins = nlohmann::json::array(), layers = nlohmann::json::array();
  std::set<std::string> seen;
  double plugin_total = 0, plugin_active = 0, forward_flops = 0;
  const auto templates = config.layers();
  for (size_t i = 0; i < model.layers().size(); ++i) {
    forward_flops += layer_forward_flops(model.layers()[i], templates[i], config.model.d_model, config.data.seq_len);
    nlohmann::json layer{{"index", i}};
    if (!model.layers()[i].mixer && model.layers()[i].streams.empty()) layer["mixer"] = "none";
    if (!model.layers()[i].ffn) layer["ffn"] = "none";
    for (const auto& slot : model.layers()[i].plugins()) {
      const auto& ref = slot.plugin->ref();
      auto cost = slot.plugin->cost(config.data.seq_len, 4);
      plugin_total += static_cast<double>(slot.plugin->n_parameters());
      plugin_active += cost.active_params;
      layer[slot.name] = ref.label();
      if (seen.insert(ref.label() + ref.library->path().string()).second)
        plugins.push_back({{"family", ref.family()},
                           {"name", ref.impl->name},
                           {"impl", ref.impl->impl},
                           {"version", ref.version.str()},
                           {"file", ref.library->path().string()},
                           {"sha256", ref.library->sha256()}});
    }
    layers.push_back(layer);
  }
  forward_flops += readout_forward_flops(config.model);
  double total = static_cast<double>(model.n_parameters());
  active = total - plugin_total + plugin_active;
  // Forward FLOPs per token: the plugins' own count plus the LM head; training is 3x forward.
  flops_per_token = 3.0 * (forward_flops + 2.0 * static_cast<double>(config.model.d_model * model.vocab_size()));
  return {{"plugins", plugins}, {"layers", layers}};
}

// Load mean/std and dead experts from the last expert_share statistic of each MoE layer.
nlohmann::json routing_summary(const std::map<std::string, torch::Tensor>& stats) {
  const std::string suffix = "/expert_share";
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, t] : stats)
    if (name.size() > suffix.size() && name.ends_with(suffix))
      out[name.substr(0, name.size() - suffix.size())] = expert_load(t);
  return out;
}

// The state of the newest intact checkpoint, loaded into the model, optimizer and data position.
TrainerState resume_state(const std::filesystem::path& run_dir, Model& model, torch::optim::AdamW& optimizer,
                          data::Dataset& dataset) {
  auto ckpt = newest_intact_checkpoint(run_dir);
  if (!ckpt) {
    log::warn(run_dir.string() + ": no checkpoint yet; training again from step 0");
    return {};
  }
  TrainerState state = load_checkpoint(*ckpt, model, &optimizer);
  dataset.set_position(state.data_position);
  log::info("resumed from " + ckpt->string() + " at step " + std::to_string(state.step));
  return state;
}

// --init-from: the weights of another model folder, a fresh optimizer; a resumed run keeps its own.
void start_from_weights(const RunOptions& options, Model& model) {
  if (!options.init_from) return;
  if (options.resume) {
    log::warn("--init-from " + options.init_from->string() + " ignored: a resumed run continues from its checkpoint");
    return;
  }
  init_weights_from(*options.init_from, model);
  log::info("initial weights from " + find_model_folder(*options.init_from).weights.string());
}

}  // namespace

int set_threads(const ExperimentConfig& config) {
  at::set_num_threads(config.training.threads > 0 ? static_cast<int>(config.training.threads) : default_thread_count());
  return at::get_num_threads();
}

int run_experiment(const RunOptions& options) {
  auto wall_start = std::chrono::steady_clock::now();
  std::filesystem::path experiment_file = options.experiment;
  std::vector<std::string> overrides = options.overrides;
  std::filesystem::path run_dir;
  if (options.resume) {
    run_dir = *options.resume;
    auto inputs = resume_inputs(run_dir);
    experiment_file = inputs.experiment, overrides = inputs.overrides;
    // --set on resume adds to the run's overrides, e.g. training.grad_accum_steps to keep the
    // global batch when the world size changes (docs/distributed.md).
    overrides.insert(overrides.end(), options.overrides.begin(), options.overrides.end());
  } else {
    if (!options.run_dir) throw std::logic_error("run_experiment: a new run needs its folder (create_run_folder)");
    run_dir = *options.run_dir;
  }
  ExperimentConfig config = load_experiment(experiment_file, overrides);

  // Set-up: an error here ends the worker before training, and the supervisor removes the run
  // folder it made for this run (docs/fault-model.md).
  Registry registry = experiment_registry(config);
  auto problems = check_plugins(config, registry);
  if (!problems.empty()) throw ExperimentError(problems);
  require_memory_fits(experiment_file.string(), config, explain_report(config, registry));
  set_threads(config);
  // Data parallel (docs/distributed.md): a world of one without a launch environment.
  auto launch = LaunchEnv::from_environment();
  if (launch) log::set_rank(launch->rank);
  torch::Device device = pick_device(config.training.device, launch ? launch->local_rank : 0);
  auto dp = DataParallel::connect(config, launch, device);
  dp->require_same_experiment(config, registry);
  std::unique_ptr<data::Dataset> dataset;
  dp->rank0_first("open the data", [&] { dataset = open_dataset(config); });
  require_transition_tokens(config, dataset->tokenizer());
  data::require_window("train", dataset->train_tokens(), config.data.seq_len);

  if (options.resume && dp->writes() && !options.overrides.empty())
    write_file_atomic(run_dir / "overrides.json", nlohmann::json(overrides).dump());
  nlohmann::json resolved = config.to_json();
  if (dp->writes()) {
    log::add_file_sink((run_dir / "train.log").string());
    write_file_atomic(run_dir / "config.json", resolved.dump(2));
  }
  log::info("run folder " + run_dir.string());
  log::info("data: " + dataset->describe());
  if (config.tokenizer.kind == "sentencepiece" && dataset->tokenizer().vocab_size() < config.tokenizer.vocab_size)
    log::warn("tokenizer: asked for " + std::to_string(config.tokenizer.vocab_size) + " pieces, the corpus gave " +
              std::to_string(dataset->tokenizer().vocab_size()) + "; the model uses " +
              std::to_string(dataset->tokenizer().vocab_size()) +
              " (host explain plans from tokenizer.vocab_size and counts more embedding parameters)");

  torch::manual_seed(config.job.seed);
  Model model(config, registry, dataset->tokenizer().vocab_size(), device);
  start_from_weights(options, model);
  double active_params = 0, flops_per_token = 0;
  nlohmann::json facts = model_facts(model, config, active_params, flops_per_token);

  auto adamw = make_adamw(config, model);
  torch::optim::AdamW& optimizer = *adamw;

  TrainerState state;
  if (options.resume) state = resume_state(run_dir, model, optimizer, *dataset);
  const bool finished_before = state.step >= config.training.steps;  // killed after its final checkpoint
  if (options.profile_steps > 0 && state.step + 1 + options.profile_steps > config.training.steps)
    throw std::runtime_error("--profile-steps " + std::to_string(options.profile_steps) + " needs " +
                             std::to_string(options.profile_steps + 1) + " steps to run (the first is not profiled); " +
                             std::to_string(config.training.steps - state.step) + " remain (training.steps = " +
                             std::to_string(config.training.steps) + ")");
  dp->broadcast(model_tensors(model));
  dp->watch_gradients(model_tensors(model));
  std::optional<MetricsLog> metrics;
  if (dp->writes()) metrics.emplace(run_dir / "metrics.jsonl", options.resume ? state.step : -1);

  // MFU is against the matmul rate of the run's dtype (bfloat16 autocast multiplies in bfloat16).
  const bool bf16 = config.training.dtype == "bfloat16";
  const double gflops_fp32 = measure_matmul_gflops(1024, torch::kFloat32, device);
  const double gflops = bf16 ? measure_matmul_gflops(1024, torch::kBFloat16, device) : gflops_fp32;
  log::info("threads " + std::to_string(at::get_num_threads()) + ", matmul " + std::to_string(gflops) + " GFLOP/s (" +
            config.training.dtype + "), " +
            std::to_string(model.n_parameters()) + " parameters (" + std::to_string(static_cast<int64_t>(active_params)) +
            " active)");

  nlohmann::json manifest{
      {"schema_version", 1},
      {"status", "running"},
      {"name", config.job.name},
      {"description", config.job.description},
      {"references", config.job.references},
      {"command", options.resume ? "host run --resume " + run_dir.string() : "host run " + options.experiment.string()},
      {"experiment_file", std::filesystem::absolute(experiment_file).string()},
      {"overrides", overrides},
      {"init_from", options.init_from && !options.resume ? nlohmann::json(options.init_from->string()) : nullptr},
      {"config", resolved},
      {"config_sha256", sha256_string(resolved.dump())},
      {"seed", config.job.seed},
      {"started_at", utc_now()},
      {"git", git_info()},
      {"software", {{"libtorch", TORCH_VERSION}, {"aten_threads", at::get_num_threads()}, {"device", device.str()},
                    {"malloc", allocator_settings()}}},
      {"host", {{"cpu", cpu_model()}, {"nproc", std::thread::hardware_concurrency()}}},
      {"model", {{"params_total", model.n_parameters()}, {"params_active", active_params}, {"train_flops_per_token", flops_per_token}}},
      {"plugins", facts["plugins"]},
      {"layers", facts["layers"]},
      {"data", {{"describe", dataset->describe()}, {"tokenizer", dataset->tokenizer().id()},
                {"vocab_size", dataset->tokenizer().vocab_size()}, {"train_tokens", dataset->train_tokens()},
                {"val_tokens", dataset->val_tokens()}, {"unigram_baseline_loss", dataset->unigram_cross_entropy()}}},
      {"performance", {{"matmul_gflops_measured", gflops_fp32}, {"matmul_dtype", config.training.dtype},
                       {"matmul_gflops_run_dtype", gflops}}},
      {"artifacts", {{"metrics", "metrics.jsonl"}, {"log", "train.log"}, {"config", "config.json"}}},
  };
  manifest["distributed"] = dp->manifest();
  auto write_manifest = [&] {
    if (dp->writes()) write_file_atomic(run_dir / "manifest.json", manifest.dump(2));
  };
  write_manifest();

  InterruptSignals interrupt;  // SIGINT, SIGTERM, SIGHUP: stop at the next step with a checkpoint
  const bool tty = isatty(STDOUT_FILENO);
  const auto& c = config.training;
  const int64_t tokens_per_step = c.batch_size * c.grad_accum_steps * config.data.seq_len * dp->world_size();
  auto train_start = std::chrono::steady_clock::now();
  int64_t start_step = state.step;
  StepProfiler profiler(options.profile_steps, start_step);
  // What logged lines and the manifest carry across steps lives in the checkpointed state (bit-identical resume).
  double &window_loss = state.window_loss, &last_loss = state.last_loss, &last_grad_norm = state.last_grad_norm;
  int64_t& window_steps = state.window_steps;
  auto& last_stats = state.last_stats;
  auto& last_eval = state.last_eval;
  std::string failure;
  int exit_code = 0;
  // bfloat16 weight gradients through row-major operands (train/row_major_matmul.hpp).
  RowMajorMatmulScope row_major_matmul(c.fused && c.dtype == "bfloat16" && device.is_cpu());

  auto validate = [&] {
    heartbeat::send(heartbeat::Phase::validate, state.step);
    auto e = evaluate(model, *dataset, c.batch_size, config.data.seq_len, config.validation.batches, dp.get());
    nlohmann::json line{{"step", state.step}, {"tokens", state.tokens},
                        {"time_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count()},
                        {"val/loss", e.loss}, {"val/ppl", e.ppl}};
    if (e.bpb > 0) line["val/bpb"] = e.bpb;
    if (dataset->is_probe_task()) line["val/accuracy"] = e.accuracy;
    if (metrics) metrics->write(line);
    if (e.loss < state.best_val_loss) state.best_val_loss = e.loss, state.best_step = state.step;
    std::ostringstream msg;
    msg << "step " << state.step << " validation: loss " << e.loss << ", ppl " << e.ppl;
    if (e.bpb > 0) msg << ", bpb " << e.bpb;
    if (dataset->is_probe_task()) msg << ", accuracy " << e.accuracy;
    msg << " (unigram baseline loss " << dataset->unigram_cross_entropy() << ")";
    if (tty) std::cout << "\r\33[2K" << std::flush;
    log::info(msg.str());
    last_eval = e;
  };

  try {
  while (state.step < c.steps) {
    if (dp->any(interrupt.requested())) {  // every rank stops at the same step
      failure = "interrupted (" + (interrupt.requested() ? interrupt.name() : "another rank's stop signal") +
                ") at step " + std::to_string(state.step);
      exit_code = 130;
      break;
    }
    heartbeat::send(heartbeat::Phase::train, state.step);
    profiler.step_starts(state.step);
    double lr = learning_rate(state.step, config);
    for (auto& g : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    optimizer.zero_grad();
    double step_loss = 0;
    std::map<std::string, torch::Tensor> stat_sums;  // plugin statistics summed over the micro-batches
    const uint64_t step_start = dataset->position();
    for (int64_t micro = 0; micro < c.grad_accum_steps; ++micro) {
      auto batch = dp->next_batch(*dataset, step_start, micro, c.batch_size, config.data.seq_len);
      auto inputs = batch.inputs.to(device), targets = batch.targets.to(device);
      ModelOutput out;
      torch::Tensor loss, mtp_loss = torch::zeros({}, torch::TensorOptions().device(device));
      {
        AutocastScope autocast(c.dtype == "bfloat16", device);
        const uint64_t seed = seed_random_draws(config.job.seed, dp->rank(),
                                                static_cast<uint64_t>(state.step * c.grad_accum_steps + micro));
        std::vector<torch::Tensor> stream;  // the residual stream after each layer: multi-token prediction's input
        out = model.forward_features(inputs, true, seed, model.mtp() ? &stream : nullptr);
        auto [sum, count] = lm_head_loss(model, out.features, targets, c.fused);
        // Mean over the scored tokens of every rank's micro-batch (gradients are averaged over ranks).
        auto tokens_for_mean = [&](int64_t n) { return dp->sum(static_cast<double>(n)) / dp->world_size(); };
        loss = sum / std::max(1.0, tokens_for_mean(count));
        if (model.mtp())
          mtp_loss = mtp_objective(model, stream.back(), inputs, targets, c.fused, true, seed, tokens_for_mean, out);
      }
      auto objective = (loss + out.aux_loss + mtp_loss) / static_cast<double>(c.grad_accum_steps);
      dp->before_backward(micro == 0, micro + 1 == c.grad_accum_steps);
      objective.backward();
      dp->after_backward();  // on the last micro-batch: gradients averaged over ranks
      step_loss += loss.item<double>() / static_cast<double>(c.grad_accum_steps);
      for (const auto& s : out.sides) {
        if (s.per_token) continue;
        auto v = s.value.detach().to(torch::kCPU, torch::kFloat64);
        auto& sum = stat_sums[s.name];
        sum = sum.defined() ? sum + v : v;
      }
    }
    // The step's loss and statistics: means over every micro-batch of every rank (one all-reduce).
    std::vector<double> totals{step_loss};
    for (const auto& [name, sum] : stat_sums)
      totals.insert(totals.end(), sum.data_ptr<double>(), sum.data_ptr<double>() + sum.numel());
    totals = dp->sum(totals);
    step_loss = totals[0] / dp->world_size();
    size_t next = 1;
    const double calls = static_cast<double>(c.grad_accum_steps * dp->world_size());
    for (const auto& [name, sum] : stat_sums) {
      auto mean = torch::from_blob(totals.data() + next, sum.sizes(), torch::kFloat64).div(calls);
      last_stats[name] = mean.to(torch::kFloat32);
      next += static_cast<size_t>(sum.numel());
    }
    // "nan", "inf" or "-inf" ("nan" whatever its sign bit: -nan says nothing more).
    auto number_text = [](double x) { return std::isnan(x) ? std::string("nan") : std::to_string(x); };
    if (!std::isfinite(step_loss)) {
      failure = "the training loss became " + number_text(step_loss) + " at step " + std::to_string(state.step) +
                "; stopped (the last good checkpoint is kept; try a lower optimizer.lr or training.max_norm)";
      exit_code = 3;
      break;
    }
    std::vector<torch::Tensor> all = model_tensors(model);
    const double max_norm = c.max_norm > 0 ? c.max_norm : 1e30;
    // The fused step applies the clipping factor itself (train/fused_adamw.hpp).
    double grad_norm = c.fused ? gradient_norm(all) : torch::nn::utils::clip_grad_norm_(all, max_norm);
    // A finite loss can still have a non-finite gradient (a derivative that is not defined where its
    // function is): stop before the optimizer writes it into the weights. The norm is of the gradients
    // averaged over ranks, so every rank stops here together.
    if (!std::isfinite(grad_norm)) {
      failure = "the gradient norm became " + number_text(grad_norm) + " at step " + std::to_string(state.step) +
                " (the loss was " + std::to_string(step_loss) +
                "); stopped before the optimizer step (the last good checkpoint is kept; a plugin's backward may "
                "be at fault: `host conformance` checks each plugin's gradients)";
      exit_code = 3;
      break;
    }
    fault_point(kFaultMidStep, state.step + 1);
    if (c.fused) fused_adamw_step(optimizer, clip_factor(grad_norm, max_norm));
    else optimizer.step();
    ++state.step;
    if (profiler.step_ended(state.step, run_dir, dp->writes()))
      manifest["artifacts"]["profile"] = nlohmann::json::array({"profile.txt", "profile.json"});
    state.tokens += tokens_per_step;
    state.data_position = dataset->position();
    last_loss = step_loss, last_grad_norm = grad_norm;
    window_loss += step_loss, ++window_steps;
    const int64_t done = state.step;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count();
    double tok_per_s = static_cast<double>((done - start_step) * tokens_per_step) / std::max(elapsed, 1e-9);

    if (done % config.metrics.log_every == 0 || done == c.steps) {
      nlohmann::json line{{"step", done}, {"tokens", state.tokens}, {"time_s", elapsed},
                          {"created_at", utc_now()}, {"train/loss", window_loss / static_cast<double>(window_steps)},
                          {"optim/lr", lr}, {"optim/grad_norm", grad_norm}, {"speed/tok_per_s", tok_per_s},
                          {"speed/mfu", flops_per_token * tok_per_s / (gflops * 1e9)}};
      for (const auto& [name, value] : last_stats) line[name] = tensor_json(value);
      if (metrics) metrics->write(line);
      window_loss = 0, window_steps = 0;
      if (!tty) {
        std::ostringstream msg;
        msg << "step " << done << "/" << c.steps << " loss " << line["train/loss"].get<double>() << " lr " << lr
            << " grad_norm " << grad_norm << " tok/s " << static_cast<int64_t>(tok_per_s);
        log::info(msg.str());
      }
    }
    if (tty) {
      double eta = (c.steps - done) * elapsed / static_cast<double>(std::max<int64_t>(1, done - start_step));
      std::printf("\r\33[2Kstep %lld/%lld  loss %.4f  lr %.2e  tok/s %.0f  ETA %s", static_cast<long long>(done),
                  static_cast<long long>(c.steps), step_loss, lr, tok_per_s, human_time(eta).c_str());
      std::fflush(stdout);
    }
    if (config.validation.every > 0 && done % config.validation.every == 0 && done != c.steps) validate();
    if (config.checkpoint.every > 0 && done % config.checkpoint.every == 0 && done != c.steps) {
      heartbeat::send(heartbeat::Phase::checkpoint, state.step);
      if (dp->writes()) save_checkpoint(run_dir, model, optimizer, state, config.checkpoint.keep_last);
    }
  }
  if (tty) std::cout << "\r\33[2K" << std::flush;

  // An interrupted run only checkpoints: a validation there would add a line and a best_val_loss
  // the uninterrupted run does not have. A run resumed after its final checkpoint has done both.
  if (exit_code == 0 && !finished_before) validate();
  if (exit_code != 3 && !finished_before) {
    heartbeat::send(heartbeat::Phase::checkpoint, state.step);
    if (dp->writes()) save_checkpoint(run_dir, model, optimizer, state, config.checkpoint.keep_last);
  }
  heartbeat::send(heartbeat::Phase::finish, state.step);
  } catch (const std::exception& e) {
    // A failed checkpoint (full disk), data or plugin error: record it, keep what is complete.
    dp->report_failure(e);
    manifest["status"] = "failed";
    manifest["error"] = e.what();
    manifest["finished_at"] = utc_now();
    try {
      write_manifest();
    } catch (const std::exception&) {
      log::error("could not update manifest.json either");
    }
    throw;
  }
  double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count();
  double tok_per_s = static_cast<double>((state.step - start_step) * tokens_per_step) / std::max(train_seconds, 1e-9);
  manifest["status"] = exit_code == 0 ? "completed" : exit_code == 130 ? "interrupted" : "failed";
  if (!failure.empty()) manifest["error"] = failure;
  manifest["finished_at"] = utc_now();
  manifest["wall_time_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  nlohmann::json results{{"steps", state.step}, {"tokens_seen", state.tokens}, {"final_train_loss", last_loss}};
  if (last_eval) {
    results["final_val_loss"] = last_eval->loss;
    results["final_val_ppl"] = last_eval->ppl;
    if (last_eval->bpb > 0) results["final_val_bpb"] = last_eval->bpb;
    if (dataset->is_probe_task()) results["probe_accuracy"] = last_eval->accuracy;
    results["best_val_loss"] = state.best_val_loss;
    results["best_val_ppl"] = std::exp(state.best_val_loss);
    results["best_step"] = state.best_step;
  }
  results["final_grad_norm"] = last_grad_norm;
  manifest["results"] = results;
  auto routing = routing_summary(last_stats);
  if (!routing.empty()) manifest["routing"] = routing;
  manifest["performance"] = {{"matmul_gflops_measured", gflops_fp32}, {"matmul_dtype", config.training.dtype},
                             {"matmul_gflops_run_dtype", gflops}, {"tok_per_s", tok_per_s},
                             {"mfu", flops_per_token * tok_per_s / (gflops * 1e9)}, {"train_seconds", train_seconds},
                             {"peak_rss_mib", peak_rss_mib()}, {"aten_threads", at::get_num_threads()}};
  if (auto ckpt = latest_checkpoint(run_dir)) manifest["artifacts"]["checkpoint"] = std::filesystem::relative(*ckpt, run_dir).string();
  manifest["distributed"] = dp->manifest();
  if (dp->writes()) {
    std::string plot_problem = plot_loss_curve(run_dir, config.job.name);
    if (plot_problem.empty()) manifest["artifacts"]["loss_curve"] = "loss.png";
    else log::warn("no loss curve: " + plot_problem);
    write_file_atomic(run_dir / "manifest.json", manifest.dump(2), [&] { fault_point(kFaultFinalManifest, state.step); });
  }
  if (exit_code != 0) {
    log::error(failure);
    return exit_code;
  }
  std::ostringstream done;
  done << "done: " << state.step << " steps, val loss " << (last_eval ? last_eval->loss : 0) << " (ppl "
       << (last_eval ? last_eval->ppl : 0) << "), " << static_cast<int64_t>(tok_per_s) << " tok/s; " << run_dir.string();
  log::info(done.str());
  return 0;
}

}  // namespace mixlab
