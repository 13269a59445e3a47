// `host generate`, `host forward` and `host analyze`: using a trained model.
#include "analysis/routing_analysis.hpp"
#include "cli/commands.hpp"
#include "cli/option_checks.hpp"
#include "experiment/schema.hpp"
#include "model/generation.hpp"
#include "model/safetensors.hpp"
#include "train/trained_run.hpp"

#include <fstream>
#include <iostream>
#include <iterator>

namespace mixlab::cli {
namespace {

// What `host generate` prints: the continuation, or with --mode each mode's part under a header line.
void print_generation(const std::string& prompt, const std::vector<GeneratedPart>& parts, const data::Tokenizer& tok,
                      bool as_json) {
  if (as_json) {
    nlohmann::json out{{"prompt", prompt}, {"parts", nlohmann::json::array()}};
    for (const auto& p : parts)
      out["parts"].push_back({{"mode", p.mode}, {"text", tok.decode(p.ids)}, {"ids", p.ids},
                              {"tokens", p.ids.size()}, {"ended_by", p.ended_by},
                              {"transition_token", p.transition_token}});
    // Sampled bytes need not be UTF-8: replace what is not (the ids are exact).
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    return;
  }
  if (parts.size() == 1 && parts[0].mode.empty()) {
    std::cout << prompt << tok.decode(parts[0].ids) << std::endl;
    return;
  }
  std::cout << prompt << "\n";
  for (const auto& p : parts)
    std::cout << "=== " << p.mode << ": " << p.ids.size() << " tokens, ended by " << p.ended_by << " ===\n"
              << tok.decode(p.ids) << "\n";
  std::cout << std::flush;
}

}  // namespace

void add_model_commands(CLI::App& app, Action& action) {
  static std::string run_dir, prompt, mode;
  static SampleOptions opts;
  static bool interactive = false, as_json = false;
  auto* gen = app.add_subcommand("generate", "sample text from a trained run");
  gen->add_option("run_dir", run_dir, "run, checkpoint, compile or import folder")->required();
  gen->add_option("--prompt", prompt, "text to continue");
  gen->add_option("--tokens", opts.tokens, "tokens to generate")->check(CLI::Range(int64_t{0}, limits::kGeneratedTokens));
  static CLI::Option* temperature = nullptr;  // the callback runs after this function returns
  static CLI::Option* top_k = nullptr;
  temperature = gen->add_option("--temperature", opts.temperature, "sampling temperature (0: greedy); "
                                                                          "given, it wins over the modes' own")
      ->check(finite_number())
      ->check(CLI::NonNegativeNumber);
  top_k = gen->add_option("--top-k", opts.top_k, "sample among the k most likely tokens (0: all); given, it wins "
                                                       "over the modes' own")
      ->check(CLI::Range(int64_t{0}, limits::kVocab));
  gen->add_option("--mode", mode, "start in this execution mode of the experiment ([execution_modes.NAME], e.g. "
                                  "reason): its budget, sampler and transition; each mode's text is reported apart");
  gen->add_flag("--json", as_json, "print the prompt and each part (mode, text, ids, ended_by) as JSON");
  gen->add_option("--seed", opts.seed, "sampling seed");
  gen->add_flag("--interactive", interactive, "keep a prompt loop open (empty line or EOF ends it)");
  gen->callback([&] {
    action = [&] {
      opts.temperature_given = temperature->count() > 0;
      opts.top_k_given = top_k->count() > 0;
      auto run = load_trained_run(run_dir);
      const auto& tok = run.data().tokenizer();
      require_transition_tokens(run.config, tok);
      std::cerr << "model: " << run.weights.string() << (run.model->can_decode() ? " (decode steps)" : " (recomputing)")
                << (run.model->mtp() ? "; its multi-token prediction modules are training-only, not used here" : "")
                << "\n";
      auto continue_text = [&](const std::string& text) {
        print_generation(text, generate(*run.model, tok, run.config, tok.encode(text), mode, opts), tok, as_json);
      };
      if (!interactive) {
        continue_text(prompt);
        return 0;
      }
      std::string line;
      while (std::cout << "> " << std::flush, std::getline(std::cin, line) && !line.empty()) {
        continue_text(line);
        std::cout << std::endl;
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
