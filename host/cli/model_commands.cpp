// `host generate`, `host forward` and `host analyze`: using a trained model.
#include "analysis/routing_analysis.hpp"
#include "cli/commands.hpp"
#include "cli/option_checks.hpp"
#include "experiment/schema.hpp"
#include "model/safetensors.hpp"
#include "train/trained_run.hpp"

#include <fstream>
#include <iostream>
#include <iterator>

namespace mixlab::cli {
namespace {

// More than any model's context: a typo (an extra zero or ten) is refused instead of looping for days.
constexpr int64_t kMaxGeneratedTokens = 1'000'000;

struct SampleOptions {
  int64_t tokens = 200;
  double temperature = 0.8;
  int64_t top_k = 40;
  uint64_t seed = 0;
};

int64_t sample(const torch::Tensor& logits, const SampleOptions& o, at::Generator& gen) {
  auto l = logits.to(torch::kFloat64);
  if (o.temperature <= 0) return l.argmax().item<int64_t>();
  l = l / o.temperature;
  if (o.top_k > 0 && o.top_k < l.size(0)) {
    auto kth = std::get<0>(l.topk(o.top_k)).min();
    l = l.masked_fill(l < kth, -std::numeric_limits<double>::infinity());
  }
  return torch::multinomial(torch::softmax(l, 0), 1, false, gen).item<int64_t>();
}

// Continues `prompt`; uses each mixer's decode step when all declare one, else recomputes.
std::string continue_text(TrainedRun& run, const std::string& prompt, const SampleOptions& o) {
  torch::NoGradGuard no_grad;
  const auto& tok = run.data().tokenizer();
  auto ids = tok.encode(prompt);
  if (ids.empty()) ids.push_back(0);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const int64_t max_len = run.config.model.max_seq_len;
  std::vector<int32_t> out;
  auto as_tensor = [](const std::vector<int32_t>& v) {
    return torch::tensor(std::vector<int64_t>(v.begin(), v.end()), torch::kInt64).unsqueeze(0);
  };
  if (run.model->can_decode() && static_cast<int64_t>(ids.size()) + o.tokens <= max_len) {
    auto session = run.model->start_decode(1);
    auto logits = session.step(as_tensor(ids));
    for (int64_t i = 0; i < o.tokens; ++i) {
      int64_t next = sample(logits[0][-1], o, gen);
      out.push_back(static_cast<int32_t>(next));
      logits = session.step(torch::tensor({next}, torch::kInt64).view({1, 1}));
    }
  } else {
    std::vector<int32_t> context = ids;
    for (int64_t i = 0; i < o.tokens; ++i) {
      std::vector<int32_t> window(context.end() - std::min<int64_t>(max_len, static_cast<int64_t>(context.size())), context.end());
      auto logits = run.model->forward(as_tensor(window), false, 0).logits;
      int64_t next = sample(logits[0][-1], o, gen);
      out.push_back(static_cast<int32_t>(next));
      context.push_back(static_cast<int32_t>(next));
    }
  }
  return tok.decode(out);
}

}  // namespace

void add_model_commands(CLI::App& app, Action& action) {
  static std::string run_dir, prompt;
  static SampleOptions opts;
  static bool interactive = false;
  auto* gen = app.add_subcommand("generate", "sample text from a trained run");
  gen->add_option("run_dir", run_dir, "run, checkpoint, compile or import folder")->required();
  gen->add_option("--prompt", prompt, "text to continue");
  gen->add_option("--tokens", opts.tokens, "tokens to generate")->check(CLI::Range(int64_t{0}, kMaxGeneratedTokens));
  gen->add_option("--temperature", opts.temperature, "sampling temperature (0: greedy)")
      ->check(finite_number())
      ->check(CLI::NonNegativeNumber);
  gen->add_option("--top-k", opts.top_k, "sample among the k most likely tokens (0: all)")
      ->check(CLI::Range(int64_t{0}, limits::kVocab));
  gen->add_option("--seed", opts.seed, "sampling seed");
  gen->add_flag("--interactive", interactive, "keep a prompt loop open (empty line or EOF ends it)");
  gen->callback([&] {
    action = [&] {
      auto run = load_trained_run(run_dir);
      std::cerr << "model: " << run.weights.string() << (run.model->can_decode() ? " (decode steps)" : " (recomputing)")
                << "\n";
      if (!interactive) {
        std::cout << prompt << continue_text(run, prompt, opts) << std::endl;
        return 0;
      }
      std::string line;
      while (std::cout << "> " << std::flush, std::getline(std::cin, line) && !line.empty()) {
        std::cout << line << continue_text(run, line, opts) << "\n" << std::endl;
        ++opts.seed;
      }
      return 0;
    };
  });

  static std::string fwd_run, input, output;
  auto* fwd = app.add_subcommand("forward", "write the logits of given token ids as safetensors");
  fwd->add_option("run_dir", fwd_run, "run, checkpoint, compile or import folder")->required();
  fwd->add_option("--input", input, "file of token ids: whitespace-separated integers, one sequence per line")
      ->required()
      ->check(regular_file());
  fwd->add_option("--output", output, "output .safetensors (tensors \"tokens\" and \"logits\")")->required();
  fwd->callback([&] {
    action = [&] {
      auto run = load_trained_run(fwd_run);
      std::ifstream in(input);
      if (!in) throw std::runtime_error(input + ": cannot read");
      std::vector<std::vector<int64_t>> rows;
      std::string line;
      while (std::getline(in, line)) {
        std::istringstream ss(line);
        std::vector<int64_t> ids((std::istream_iterator<int64_t>(ss)), std::istream_iterator<int64_t>());
        if (!ss.eof()) throw std::runtime_error(input + ": line " + std::to_string(rows.size() + 1) + " is not a list of integers");
        if (!ids.empty()) rows.push_back(ids);
      }
      if (rows.empty()) throw std::runtime_error(input + ": no token ids");
      for (size_t r = 0; r < rows.size(); ++r) {
        if (rows[r].size() != rows[0].size())
          throw std::runtime_error(input + ": every line must have the same number of ids (line " + std::to_string(r + 1) + ")");
        for (auto id : rows[r])
          if (id < 0 || id >= run.model->vocab_size())
            throw std::runtime_error(input + ": token id " + std::to_string(id) + " outside [0, " +
                                     std::to_string(run.model->vocab_size()) + ")");
      }
      auto tokens = torch::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, torch::kInt64);
      for (size_t r = 0; r < rows.size(); ++r)
        for (size_t t = 0; t < rows[r].size(); ++t) tokens[r][t] = rows[r][t];
      torch::NoGradGuard no_grad;
      auto logits = run.model->forward(tokens, false, 0).logits;
      save_safetensors(output, {{"tokens", tokens}, {"logits", logits.to(torch::kFloat32)}},
                       {{"run", fwd_run}, {"weights", run.weights.string()}});
      std::cout << output << ": logits " << c10::str(logits.sizes()) << "\n";
      return 0;
    };
  });

  static AnalyzeOptions analyze;
  static std::string analyze_prompts, analyze_output;
  auto* an = app.add_subcommand("analyze", "MoE routing analysis of a trained run: per layer and expert, per token "
                                           "class, per labelled prompt; PNG plots, JSON and CSV");
  an->add_option("run_dir", analyze.run_dir, "run, checkpoint, compile or import folder")->required();
  an->add_option("--prompts", analyze_prompts, "file of labelled prompts, one per line: label<TAB>text")
      ->check(regular_file());
  an->add_option("--batches", analyze.batches, "validation batches to route (of the run's batch size)")
      ->check(CLI::Range(int64_t{1}, limits::kBatches));
  an->add_option("--output-dir", analyze_output, "where to write the analysis (default: the run folder)");
  an->callback([&] {
    action = [&] {
      if (!analyze_prompts.empty()) analyze.prompts = analyze_prompts;
      if (!analyze_output.empty()) analyze.output_dir = analyze_output;
      print_routing_report(analyze_routing(analyze));
      std::cout << "wrote routing.json, routing-by-layer.csv, routing-analysis.png"
                << (std::filesystem::exists(analyze.output_dir.value_or(analyze.run_dir) / "expert-by-class.png")
                        ? ", routing-by-class.csv, expert-by-class.png" : "")
                << (analyze.prompts ? ", routing-by-label.csv" : "") << " in "
                << analyze.output_dir.value_or(analyze.run_dir).string() << "\n";
      return 0;
    };
  });
}

}  // namespace mixlab::cli
