#include "train/plot.hpp"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>

namespace mixlab {

std::string plot_loss_curve(const std::filesystem::path& run_dir, const std::string& title) {
  std::ifstream in(run_dir / "metrics.jsonl");
  if (!in) return "no metrics.jsonl";
  auto train = run_dir / ".loss-train.dat", val = run_dir / ".loss-val.dat";
  {
    std::ofstream t(train), v(val);
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("train/loss")) t << j["step"] << " " << j["train/loss"] << "\n";
      if (j.contains("val/loss")) v << j["step"] << " " << j["val/loss"] << "\n";
    }
  }
  auto script = run_dir / ".loss.gp";
  auto tmp_png = run_dir / ".loss.png.tmp";
  {
    std::ofstream gp(script);
    gp << "set terminal pngcairo size 900,540 font 'sans,10'\n"
       << "set output '" << tmp_png.string() << "'\n"
       << "set title \"" << title << "\" noenhanced\n"
       << "set xlabel 'step'\nset ylabel 'loss (nats/token)'\nset grid\nset key top right\n"
       << "plot '" << train.string() << "' using 1:2 with lines lw 1.5 title 'train', "
       << "'" << val.string() << "' using 1:2 with linespoints lw 2 pt 7 title 'validation'\n";
  }
  int rc = std::system(("gnuplot '" + script.string() + "' > /dev/null 2>&1").c_str());
  std::filesystem::remove(script);
  std::filesystem::remove(train);
  std::filesystem::remove(val);
  if (rc != 0) {
    std::filesystem::remove(tmp_png);
    return "gnuplot failed or is not installed (make deps installs gnuplot-nox)";
  }
  std::filesystem::rename(tmp_png, run_dir / "loss.png");
  return "";
}

}  // namespace mixlab
