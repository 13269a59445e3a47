#include "model/generation.hpp"

#include "experiment/loader.hpp"
#include "experiment/schema.hpp"
#include "model/readout.hpp"

#include <limits>

namespace mixlab {
namespace {

// The logits of the next token after everything pushed so far.
class TokenStream {
 public:
  // `most_new`: an upper bound of the tokens that will be pushed after the prompt.
  TokenStream(Model& model, std::vector<int32_t> prompt, int64_t most_new) : model_(model), context_(std::move(prompt)) {
    if (context_.empty()) context_.push_back(0);
    const int64_t max_len = model.config().model.max_seq_len;
    if (model.can_decode() && static_cast<int64_t>(context_.size()) + most_new <= max_len) {
      session_.emplace(model.start_decode(1));
      logits_ = session_->step(as_tensor(context_))[0][-1];
    }
  }

  torch::Tensor next_logits() {
    if (session_) return logits_;
    // Recompute over the last max_seq_len tokens.
    const int64_t max_len = model_.config().model.max_seq_len, n = static_cast<int64_t>(context_.size());
    std::vector<int32_t> window(context_.end() - std::min(max_len, n), context_.end());
    return model_.forward(as_tensor(window), false, 0).logits[0][-1];
  }

  void push(int64_t id) {
    context_.push_back(static_cast<int32_t>(id));
    if (session_) logits_ = session_->step(torch::tensor({id}, torch::kInt64).view({1, 1}))[0][-1];
  }

  bool decodes() const { return session_.has_value(); }

 private:
  static torch::Tensor as_tensor(const std::vector<int32_t>& v) {
    return torch::tensor(std::vector<int64_t>(v.begin(), v.end()), torch::kInt64).unsqueeze(0);
  }

  Model& model_;
  std::vector<int32_t> context_;
  std::optional<Model::DecodeSession> session_;
  torch::Tensor logits_;
};

std::string mode_list(const ExperimentConfig& config) {
  std::string list;
  for (const auto& [name, m] : config.execution_modes) list += (list.empty() ? "" : ", ") + name;
  return list;
}

// The one id of a transition token (require_transition_tokens has checked it is one piece).
int64_t token_id(const data::Tokenizer& tokenizer, const std::string& token) {
  auto ids = tokenizer.encode(token);
  if (ids.size() != 1) throw std::logic_error("transition token \"" + token + "\" is not one piece");
  return ids[0];
}

}  // namespace

int64_t sample_token(const torch::Tensor& logits, double temperature, int64_t top_k, at::Generator& gen) {
  auto l = logits.to(torch::kFloat64);
  if (temperature <= 0) return l.argmax().item<int64_t>();
  l = l / temperature;
  if (top_k > 0 && top_k < l.size(0)) {
    auto kth = std::get<0>(l.topk(top_k)).min();
    l = l.masked_fill(l < kth, -std::numeric_limits<double>::infinity());
  }
  return torch::multinomial(torch::softmax(l, 0), 1, false, gen).item<int64_t>();
}

std::vector<GeneratedPart> generate(Model& model, const data::Tokenizer& tokenizer, const ExperimentConfig& config,
                                    std::vector<int32_t> prompt, const std::string& mode, const SampleOptions& o) {
  torch::NoGradGuard no_grad;
  if (const auto why = model.readout().non_causal(); !why.empty())
    throw std::runtime_error(why + ", so the model cannot generate (host forward gives its logits)");
  const ExperimentConfig::ExecutionMode plain;
  if (!mode.empty() && !config.execution_modes.count(mode))
    throw std::runtime_error("--mode " + mode + ": " +
                             (config.execution_modes.empty()
                                  ? std::string("the experiment declares no [execution_modes.NAME]")
                                  : "no such execution mode; the experiment declares: " + mode_list(config)));
  auto settings = [&](const std::string& name) -> const ExperimentConfig::ExecutionMode& {
    return name.empty() ? plain : config.execution_modes.at(name);
  };
  // The most tokens the chain pushes: each mode's budget and its transition token (the loader refuses cycles).
  int64_t most = 0;
  for (std::string current = mode;;) {
    const auto& m = settings(current);
    most += (m.budget > 0 ? m.budget : o.tokens) + 1;
    if (m.transition.to.empty()) break;
    current = m.transition.to;
  }
  TokenStream stream(model, std::move(prompt), most);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  std::vector<GeneratedPart> parts;
  for (std::string current = mode;;) {
    const auto& m = settings(current);
    const double temperature = o.temperature_given || !m.temperature ? o.temperature : *m.temperature;
    const int64_t top_k = o.top_k_given || !m.top_k ? o.top_k : *m.top_k;
    const int64_t budget = m.budget > 0 ? m.budget : o.tokens;
    const bool switches = !m.transition.to.empty();
    const int64_t transition = switches ? token_id(tokenizer, m.transition.special_token) : -1;
    GeneratedPart part{current, {}, "", ""};
    while (static_cast<int64_t>(part.ids.size()) < budget) {
      const int64_t next = sample_token(stream.next_logits(), temperature, top_k, gen);
      stream.push(next);
      if (next == transition) {
        part.ended_by = "special_token";
        break;
      }
      part.ids.push_back(static_cast<int32_t>(next));
    }
    if (part.ended_by.empty() && switches && m.transition.budget_exhausted) {
      stream.push(transition);  // the model reads the delimiter it did not write
      part.ended_by = "budget_exhausted";
    }
    if (part.ended_by.empty()) part.ended_by = "budget";
    else part.transition_token = m.transition.special_token;
    parts.push_back(part);
    if (part.ended_by == "budget") return parts;
    current = m.transition.to;
  }
}

void require_transition_tokens(const ExperimentConfig& config, const data::Tokenizer& tokenizer) {
  std::vector<Diagnostic> problems;
  for (const auto& [name, mode] : config.execution_modes) {
    const auto& token = mode.transition.special_token;
    if (token.empty()) continue;
    std::string problem;
    try {
      const auto ids = tokenizer.encode(token);
      if (ids.size() == 1) continue;
      problem = "encodes to " + std::to_string(ids.size()) + " pieces";
    } catch (const std::exception& e) {  // the ids tokenizer of probe tasks reads decimal ids only
      problem = "cannot be encoded (" + std::string(e.what()) + ")";
    }
    problems.push_back(Diagnostic{mode.transition.token_pos,
                                  std::string(kExecutionModes) + "." + name + ".transition.special_token",
                                  "\"" + token + "\" " + problem + " in the " + tokenizer.kind() + " vocabulary (" +
                                      tokenizer.id() + "); a transition token must be a single vocabulary piece"});
  }
  if (!problems.empty()) throw ExperimentError(problems);
}

}  // namespace mixlab
