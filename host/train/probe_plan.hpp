// What `host probe` trains: the MAD suite (Poli et al. 2024) and zoology's MQAR
// sweep (Arora et al. 2023), each task with its difficulty levels, at one of two
// scales: the CPU default (the MAD suite for one mixer in about 15 minutes on 2
// cores) and --full (the papers' scale). docs/probe.md lists both.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mixlab {

// A difficulty level: a label ("base", "vocab 32") and the generator options it sets.
struct ProbeLevel {
  std::string label;
  std::map<std::string, double> options;  // data.options of the task (docs/data.md), train_examples included
  int64_t batch_size = 0;                 // 0: the scale's
};

struct ProbeTaskPlan {
  std::string name;    // "recall", ..., "mqar"
  std::string source;  // "builtin:recall"
  std::vector<ProbeLevel> levels;
  bool width_sweep = false;  // MQAR: every level at every width of the scale
  bool mixer_only = false;   // MQAR: the standard model's blocks without their FFN (zoology's)
  std::vector<double> lrs, weight_decays;  // the optimizer grid; a setting keeps its best grid point
  int64_t steps = 0;                       // > 0: steps per cell of this task, instead of the scale's
  int64_t epochs = 0;                      // passes over the train set, when neither sets steps
  std::string readout = "lm";              // model.readout of its cells: compression's is "autoencoder"
};

struct ProbeScale {
  std::string name;  // "cpu" or "full"
  int64_t width = 64;                 // d_model of the standard probe model (MAD)
  int64_t blocks = 2;                 // blocks of mixer + SwiGLU MLP (hidden 4 * width)
  int64_t batch_size = 32;
  int64_t steps = 0;                  // > 0: steps per cell (a task's own steps first); 0: the task's epochs
  std::vector<int64_t> mqar_widths;
  std::vector<ProbeTaskPlan> mad, mqar;

  int64_t batch_for(const ProbeLevel& level) const { return level.batch_size > 0 ? level.batch_size : batch_size; }
  // The task's steps, else `steps`, else the task's epochs over the level's train_examples.
  int64_t steps_for(const ProbeTaskPlan& task, const ProbeLevel& level) const;
};

ProbeScale probe_scale(bool full);

}  // namespace mixlab
