#include "train/plot.hpp"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>

namespace mixlab {

std::string run_gnuplot(const std::filesystem::path& png, const std::string& commands, int width, int height) {
  auto script = png.parent_path() / ("." + png.filename().string() + ".gp");
  auto tmp_png = png.parent_path() / ("." + png.filename().string() + ".tmp");
  {
    std::ofstream gp(script);
    gp << "set terminal pngcairo size " << width << "," << height << " font 'sans,10'\n"
       << "set output '" << tmp_png.string() << "'\n"
       << commands;
  }
  int rc = std::system(("gnuplot '" + script.string() + "' > /dev/null 2>&1").c_str());
  std::filesystem::remove(script);
  if (rc != 0) {
    std::filesystem::remove(tmp_png);
    return "gnuplot failed or is not installed (make deps installs gnuplot-nox)";
  }
  std::filesystem::rename(tmp_png, png);
  return "";
}

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
  std::string why = run_gnuplot(run_dir / "loss.png",
                                "set title \"" + title + "\" noenhanced\n"
                                "set xlabel 'step'\nset ylabel 'loss (nats/token)'\nset grid\nset key top right\n"
                                "plot '" + train.string() + "' using 1:2 with lines lw 1.5 title 'train', '" +
                                    val.string() + "' using 1:2 with linespoints lw 2 pt 7 title 'validation'\n");
  std::filesystem::remove(train);
  std::filesystem::remove(val);
  return why;
}

}  // namespace mixlab
