#include "analysis/routing_analysis.hpp"

#include "model/expert_load.hpp"
#include "train/plot.hpp"
#include "train/trained_run.hpp"
#include "util/atomic_file.hpp"

#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

namespace mixlab {
namespace {

const std::string kRoutingStatistic = "/expert_weights";

// Top-k assignments counted per expert, for every MoE layer of the model.
struct RoutingCounts {
  std::vector<std::string> layers;          // "layers.3.ffn"
  std::vector<torch::Tensor> assignments;   // per layer (E): tokens that selected the expert
  std::vector<torch::Tensor> gate_weight;   // per layer (E): sum of the gate weights it received
  std::vector<torch::Tensor> by_class;      // per layer (C, E): assignments per input-token class
  std::vector<torch::Tensor> by_token;      // per layer (V, E): assignments per input token id
  torch::Tensor class_tokens;               // (C)
  int64_t tokens = 0;
};

// The (N, E) routing weights of each MoE layer in one forward, in layer order.
std::vector<std::pair<std::string, torch::Tensor>> routing_of(const ModelOutput& out) {
  std::vector<std::pair<std::string, torch::Tensor>> r;
  for (const auto& s : out.sides) {
    const auto& n = s.name;
    if (!s.per_token || n.size() <= kRoutingStatistic.size() || !n.ends_with(kRoutingStatistic)) continue;
    auto w = s.value.to(torch::kCPU, torch::kFloat64);
    r.emplace_back(n.substr(0, n.size() - kRoutingStatistic.size()), w.reshape({-1, w.size(-1)}));
  }
  return r;
}

// Adds one forward's routing. `tokens`: (N) int64 input token ids; `classes`: (N)
// int64 class per input token, -1 for none, undefined when the corpus has no classes.
void accumulate(RoutingCounts& c, const ModelOutput& out, const torch::Tensor& tokens, int64_t vocab,
                const torch::Tensor& classes, int64_t n_classes) {
  auto routing = routing_of(out);
  if (c.layers.empty()) {
    for (const auto& [name, w] : routing) {
      c.layers.push_back(name);
      c.assignments.push_back(torch::zeros({w.size(1)}, torch::kFloat64));
      c.gate_weight.push_back(torch::zeros({w.size(1)}, torch::kFloat64));
      c.by_class.push_back(torch::zeros({n_classes, w.size(1)}, torch::kFloat64));
      c.by_token.push_back(torch::zeros({vocab, w.size(1)}, torch::kFloat64));
    }
    c.class_tokens = torch::zeros({n_classes}, torch::kFloat64);
  }
  torch::Tensor valid, cls;
  if (classes.defined() && n_classes > 0) {
    valid = classes >= 0;
    cls = classes.masked_select(valid);
    c.class_tokens.index_add_(0, cls, torch::ones({cls.size(0)}, torch::kFloat64));
  }
  for (size_t l = 0; l < routing.size(); ++l) {
    const auto& w = routing[l].second;
    auto selected = (w > 0).to(torch::kFloat64);
    c.assignments[l] += selected.sum(0);
    c.gate_weight[l] += w.sum(0);
    c.by_token[l].index_add_(0, tokens, selected);
    if (valid.defined()) c.by_class[l].index_add_(0, cls, selected.index({valid}));
  }
  if (!routing.empty()) c.tokens += routing[0].second.size(0);
}

torch::Tensor normalize_rows(const torch::Tensor& t) { return t / t.sum(-1, true).clamp_min(1e-300); }

std::vector<double> values(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Mutual information (bits) between a token's class (or id) and the expert it is sent
// to, from a (C, E) table of assignment counts, with the Miller-Madow correction
// (the plug-in estimate is biased upward by about (R-1)(K-1) / (2 N ln 2) for R
// occupied rows, K occupied columns and N counts: large for token ids); and its
// fraction of the expert entropy.
std::pair<double, double> class_expert_information(const torch::Tensor& counts) {
  const double n = counts.sum().item<double>();
  auto p = counts / std::max(n, 1e-300);
  auto pc = p.sum(1, true), pe = p.sum(0, true);
  auto plug_in = (p * (p / (pc * pe)).log2()).nan_to_num(0.0, 0.0, 0.0).sum().item<double>();
  const double rows = counts.sum(1).gt(0).sum().item<double>(), cols = counts.sum(0).gt(0).sum().item<double>();
  const double mi = std::max(0.0, plug_in - (rows - 1) * (cols - 1) / (2.0 * std::max(n, 1.0) * std::log(2.0)));
  auto he = -(pe * pe.log2()).nan_to_num(0.0, 0.0, 0.0).sum().item<double>();
  return {mi, he > 0 ? mi / he : 0.0};
}

// The experts of every MoE layer must agree for the all-layer tables.
bool same_expert_count(const RoutingCounts& c) {
  for (const auto& a : c.assignments)
    if (a.size(0) != c.assignments[0].size(0)) return false;
  return true;
}

struct LabelledPrompt {
  std::string label, text;
};

std::vector<LabelledPrompt> read_prompts(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot open the prompts file");
  std::vector<LabelledPrompt> prompts;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    auto tab = line.find('\t');
    if (tab == std::string::npos || tab == 0 || tab + 1 == line.size())
      throw std::runtime_error(file.string() + ":" + std::to_string(number) +
                               ": expected label<TAB>text (a non-empty label, a tab, a non-empty text)");
    prompts.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  if (prompts.empty()) throw std::runtime_error(file.string() + ": no label<TAB>text lines");
  return prompts;
}

std::string percent_row(const std::vector<double>& shares) {
  std::ostringstream s;
  for (double v : shares) s << std::setw(8) << std::fixed << std::setprecision(1) << 100.0 * v << "%";
  return s.str();
}

// Clustered bars: per expert, one bar per layer, with the fair share dashed.
std::string plot_layer_shares(const std::filesystem::path& dir, const nlohmann::json& report) {
  const auto& layers = report["layers"];
  size_t experts = layers[0]["experts"].get<size_t>();
  auto data = dir / ".routing-layers.dat";
  {
    std::ofstream d(data);
    d << "expert";
    for (const auto& l : layers) d << " \"" << l["layer"].get<std::string>() << "\"";
    d << "\n";
    for (size_t e = 0; e < experts; ++e) {
      d << e;
      for (const auto& l : layers) d << " " << 100.0 * l["token_share"][e].get<double>();
      d << "\n";
    }
  }
  double fair = 100.0 / static_cast<double>(experts);
  std::ostringstream gp;
  gp << "set title \"Token share per expert and layer (" << report["tokens"] << " validation tokens, top-"
     << report["top_k"] << ")\" noenhanced\n"
     << "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.85 border -1\n"
     << "set xlabel 'expert'\nset ylabel 'share of top-k assignments (%)'\nset yrange [0:*]\nset grid ytics\n"
     << "set key outside right noenhanced\n"
     << "plot for [i=2:" << layers.size() + 1 << "] '" << data.string() << "' using i:xtic(1) title columnheader(i), "
     << fair << " with lines dt 2 lw 2 lc 'black' title 'fair share " << std::setprecision(3) << fair << "%'\n";
  int width = static_cast<int>(std::clamp<size_t>(300 + 18 * experts * layers.size(), 900, 2400));
  auto why = run_gnuplot(dir / "routing-analysis.png", gp.str(), width, 540);
  std::filesystem::remove(data);
  return why;
}

// Heat map: per token class (rows), the share of its assignments per expert.
std::string plot_class_shares(const std::filesystem::path& dir, const nlohmann::json& by_class, size_t experts,
                              const std::string& scope) {
  auto data = dir / ".routing-classes.dat";
  size_t rows = 0;
  {
    std::ofstream d(data);
    d << "class";
    for (size_t e = 0; e < experts; ++e) d << " " << e;
    d << "\n";
    for (const auto& c : by_class) {
      if (c["tokens"].get<double>() <= 0) continue;
      d << "\"" << c["class"].get<std::string>() << " (" << c["tokens"].get<int64_t>() << ")\"";
      for (double v : c["share"].get<std::vector<double>>()) d << " " << 100.0 * v;
      d << "\n";
      ++rows;
    }
  }
  std::ostringstream gp;
  gp << "set title \"Expert share per token class, " << scope << " (row: class (input tokens); %)\" noenhanced\n"
     << "set xlabel 'expert'\nunset key\nset view map\nset palette defined (0 'white', 1 '#4477aa', 2 '#223366')\n"
     << "set cblabel \"share of the class top-k assignments (%)\"\nset yrange [] reverse\n"
     << "set ytics noenhanced\n"
     << "plot '" << data.string() << "' matrix rowheaders columnheaders with image, '' matrix rowheaders "
     << "columnheaders using 1:2:(sprintf('%.0f', $3)) with labels font ',8'\n";
  int width = static_cast<int>(std::clamp<size_t>(400 + 50 * experts, 700, 2400));
  int height = static_cast<int>(std::clamp<size_t>(160 + 26 * rows, 400, 1600));
  auto why = run_gnuplot(dir / "expert-by-class.png", gp.str(), width, height);
  std::filesystem::remove(data);
  return why;
}

}  // namespace

nlohmann::json analyze_routing(const AnalyzeOptions& options) {
  if (options.batches < 1) throw std::runtime_error("--batches must be >= 1");
  TrainedRun run = load_trained_run(options.run_dir);
  auto dir = options.output_dir.value_or(options.run_dir);
  std::filesystem::create_directories(dir);
  torch::NoGradGuard no_grad;
  const auto& c = run.config;
  auto class_names = run.data().class_names();
  const auto n_classes = static_cast<int64_t>(class_names.size());

  RoutingCounts counts;
  for (const auto& b : run.data().validation(c.training.batch_size, c.data.seq_len, options.batches)) {
    auto out = run.model->forward(b.inputs.to(run.model->device()), false, 0);
    torch::Tensor classes;
    if (b.classes.defined()) {
      // Classes label targets; the input at t is the target at t - 1.
      classes = torch::cat({torch::full({b.classes.size(0), 1}, -1, torch::kInt64), b.classes.slice(1, 0, -1)}, 1)
                    .reshape({-1});
    }
    accumulate(counts, out, b.inputs.reshape({-1}), run.model->vocab_size(), classes, n_classes);
  }
  if (counts.layers.empty())
    throw std::runtime_error(options.run_dir.string() + ": no layer reports per-token routing (the `" +
                             kRoutingStatistic.substr(1) +
                             "` statistic of an MoE FFN built against plugin ABI >= 1.1); nothing to analyze");

  nlohmann::json report{{"run", std::filesystem::absolute(options.run_dir).string()},
                        {"checkpoint", run.weights.parent_path().filename().string()},
                        {"tokens", counts.tokens},
                        {"batches", options.batches},
                        {"layers", nlohmann::json::array()}};
  // Every token makes top_k assignments in each layer (none dropped without capacity).
  const int64_t top_k = std::llround(counts.assignments[0].sum().item<double>() / static_cast<double>(counts.tokens));
  std::ostringstream layer_csv;
  layer_csv << "layer,expert,token_share,gate_weight_share,assignments\n";
  for (size_t l = 0; l < counts.layers.size(); ++l) {
    auto share = counts.assignments[l] / counts.assignments[l].sum().clamp_min(1e-300);
    auto weight_share = counts.gate_weight[l] / counts.gate_weight[l].sum().clamp_min(1e-300);
    nlohmann::json layer = expert_load(share);
    layer["layer"] = counts.layers[l];
    layer["experts"] = share.size(0);
    layer["token_share"] = layer["expert_share"];
    layer.erase("expert_share");
    layer["gate_weight_share"] = values(weight_share);
    if (n_classes > 0) {
      auto [mi, fraction] = class_expert_information(counts.by_class[l]);
      layer["class_expert_information_bits"] = mi;
      layer["class_expert_information_fraction"] = fraction;
    }
    // The same for the token itself: routing by class cannot exceed routing by token.
    auto [token_mi, token_fraction] = class_expert_information(counts.by_token[l]);
    layer["token_expert_information_bits"] = token_mi;
    layer["token_expert_information_fraction"] = token_fraction;
    report["layers"].push_back(layer);
    for (int64_t e = 0; e < share.size(0); ++e)
      layer_csv << counts.layers[l] << "," << e << "," << share[e].item<double>() << ","
                << weight_share[e].item<double>() << "," << counts.assignments[l][e].item<double>() << "\n";
  }
  report["top_k"] = top_k;
  write_file_atomic(dir / "routing-by-layer.csv", layer_csv.str());

  const bool combinable = same_expert_count(counts);
  const size_t experts = static_cast<size_t>(counts.assignments[0].size(0));
  if (n_classes > 0 && counts.class_tokens.sum().item<double>() > 0) {
    // All MoE layers together when their expert counts agree, else the first.
    torch::Tensor table = counts.by_class[0].clone();
    if (combinable)
      for (size_t l = 1; l < counts.layers.size(); ++l) table += counts.by_class[l];
    std::string scope = combinable ? (counts.layers.size() == 1 ? counts.layers[0] : "all MoE layers") : counts.layers[0];
    auto shares = normalize_rows(table);
    nlohmann::json by_class = nlohmann::json::array();
    std::ostringstream class_csv;
    class_csv << "scope,class,tokens,expert,share\n";
    for (int64_t k = 0; k < n_classes; ++k) {
      auto n = counts.class_tokens[k].item<double>();
      by_class.push_back({{"class", class_names[static_cast<size_t>(k)]},
                          {"tokens", static_cast<int64_t>(n)},
                          {"share", values(shares[k])}});
      for (size_t e = 0; e < experts; ++e)
        class_csv << scope << "," << class_names[static_cast<size_t>(k)] << "," << static_cast<int64_t>(n) << "," << e
                  << "," << shares[k][static_cast<int64_t>(e)].item<double>() << "\n";
    }
    auto [mi, fraction] = class_expert_information(table);
    report["by_class"] = {{"scope", scope},
                          {"classes", by_class},
                          {"class_expert_information_bits", mi},
                          {"class_expert_information_fraction", fraction}};
    write_file_atomic(dir / "routing-by-class.csv", class_csv.str());
    if (auto why = plot_class_shares(dir, by_class, experts, scope); !why.empty()) report["plot_errors"].push_back(why);
  }

  if (options.prompts) {
    auto prompts = read_prompts(*options.prompts);
    std::map<std::string, std::pair<torch::Tensor, int64_t>> per_label;  // label -> (assignments (E), tokens)
    std::vector<std::string> order;
    for (const auto& p : prompts) {
      auto ids = run.data().tokenizer().encode(p.text);
      if (ids.empty()) continue;
      if (static_cast<int64_t>(ids.size()) > c.model.max_seq_len) ids.resize(static_cast<size_t>(c.model.max_seq_len));
      auto tokens = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64).unsqueeze(0);
      auto out = run.model->forward(tokens.to(run.model->device()), false, 0);
      auto routing = routing_of(out);
      auto [it, fresh] = per_label.try_emplace(p.label, torch::zeros({static_cast<int64_t>(experts)}, torch::kFloat64), 0);
      if (fresh) order.push_back(p.label);
      for (size_t l = 0; l < routing.size(); ++l)
        if (combinable || l == 0) it->second.first += (routing[l].second > 0).to(torch::kFloat64).sum(0);
      it->second.second += tokens.size(1);
    }
    nlohmann::json by_label = nlohmann::json::array();
    std::ostringstream label_csv;
    label_csv << "label,tokens,expert,share\n";
    for (const auto& label : order) {
      auto share = normalize_rows(per_label[label].first);
      by_label.push_back({{"label", label}, {"tokens", per_label[label].second}, {"share", values(share)}});
      for (size_t e = 0; e < experts; ++e)
        label_csv << label << "," << per_label[label].second << "," << e << ","
                  << share[static_cast<int64_t>(e)].item<double>() << "\n";
    }
    report["by_label"] = {{"prompts_file", std::filesystem::absolute(*options.prompts).string()},
                          {"scope", combinable ? "all MoE layers" : counts.layers[0]},
                          {"labels", by_label}};
    write_file_atomic(dir / "routing-by-label.csv", label_csv.str());
  }

  if (auto why = plot_layer_shares(dir, report); !why.empty()) report["plot_errors"].push_back(why);
  write_file_atomic(dir / "routing.json", report.dump(2) + "\n");
  return report;
}

void print_routing_report(const nlohmann::json& report) {
  const auto& layers = report["layers"];
  size_t experts = layers[0]["experts"].get<size_t>();
  std::cout << "Routing of " << report["tokens"] << " validation tokens (top-" << report["top_k"]
            << "), share of assignments per expert:\n"
            << std::left << std::setw(16) << "layer" << std::right;
  for (size_t e = 0; e < experts; ++e) std::cout << std::setw(9) << ("E" + std::to_string(e));
  std::cout << "   load std  dead\n";
  for (const auto& l : layers)
    std::cout << std::left << std::setw(16) << l["layer"].get<std::string>() << std::right
              << percent_row(l["token_share"].get<std::vector<double>>()) << std::setw(11) << std::setprecision(4)
              << l["load_std"].get<double>() << "  " << l["dead_experts"].size() << "\n";
  if (report.contains("by_class"))
    std::cout << "Class -> expert mutual information (" << report["by_class"]["scope"].get<std::string>()
              << "): " << std::setprecision(3) << report["by_class"]["class_expert_information_bits"].get<double>()
              << " bits (" << std::setprecision(3)
              << 100.0 * report["by_class"]["class_expert_information_fraction"].get<double>()
              << "% of the expert entropy)\n";
  for (const auto& l : layers)
    std::cout << "Token -> expert mutual information (" << l["layer"].get<std::string>() << "): " << std::setprecision(3)
              << l["token_expert_information_bits"].get<double>() << " bits (" << std::setprecision(3)
              << 100.0 * l["token_expert_information_fraction"].get<double>() << "% of the expert entropy)\n";
  if (report.contains("by_label")) {
    std::cout << "Per label (" << report["by_label"]["scope"].get<std::string>() << "):\n"
              << std::left << std::setw(16) << "label" << std::right;
    for (size_t e = 0; e < experts; ++e) std::cout << std::setw(9) << ("E" + std::to_string(e));
    std::cout << "\n";
    for (const auto& l : report["by_label"]["labels"])
      std::cout << std::left << std::setw(16) << l["label"].get<std::string>() << std::right
                << percent_row(l["share"].get<std::vector<double>>()) << "\n";
  }
  for (const auto& e : report.value("plot_errors", nlohmann::json::array()))
    std::cout << "warning: " << e.get<std::string>() << "\n";
}

}  // namespace mixlab
