#include "train/trainer_state.hpp"

#include <stdexcept>

namespace mixlab {
namespace {

nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

// Reads typed fields of one JSON object, naming the file and field in every refusal.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& j, std::string file, std::string prefix = "")
      : j_(j), file_(std::move(file)), prefix_(std::move(prefix)) {
    if (!j_.is_object()) {
      std::string what = prefix_.empty() ? "" : " field \"" + prefix_.substr(0, prefix_.size() - 1) + "\"";
      throw std::runtime_error(file_ + ":" + what + " must be a JSON object");
    }
  }
  bool has(const char* key) const { return j_.contains(key); }
  const nlohmann::json& at(const char* key) const {
    if (!j_.contains(key)) fail(key, "is missing");
    return j_[key];
  }
  int64_t integer(const char* key, int64_t min) const {
    const auto& v = at(key);
    bool ok = v.is_number_integer() && (!v.is_number_unsigned() || v.get<uint64_t>() <= INT64_MAX) && v.get<int64_t>() >= min;
    if (!ok) fail(key, "must be an integer >= " + std::to_string(min) + ", got " + v.dump());
    return v.get<int64_t>();
  }
  uint64_t unsigned_integer(const char* key) const {
    const auto& v = at(key);
    if (!v.is_number_unsigned()) fail(key, "must be a non-negative integer, got " + v.dump());
    return v.get<uint64_t>();
  }
  double number(const char* key) const {
    const auto& v = at(key);
    if (!v.is_number()) fail(key, "must be a number, got " + v.dump());
    return v.get<double>();
  }
  // null stands for a value that is not finite (no validation yet, no step yet).
  double number_or_null(const char* key, double null_value) const {
    return at(key).is_null() ? null_value : number(key);
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw std::runtime_error(file_ + ": field \"" + prefix_ + key + "\" " + what);
  }

 private:
  const nlohmann::json& j_;
  std::string file_, prefix_;
};

}  // namespace

nlohmann::json TrainerState::to_json() const {
  nlohmann::json eval = nullptr;
  if (last_eval)
    eval = {{"loss", last_eval->loss}, {"ppl", last_eval->ppl}, {"bpb", last_eval->bpb},
            {"accuracy", last_eval->accuracy}, {"tokens", last_eval->tokens}};
  return {{"step", step},
          {"tokens", tokens},
          {"data_position", data_position},
          {"best_val_loss", number_or_null(best_val_loss)},
          {"best_step", best_step},
          {"window_loss", window_loss},
          {"window_steps", window_steps},
          {"last_loss", number_or_null(last_loss)},
          {"last_grad_norm", last_grad_norm},
          {"last_eval", eval}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& file) {
  FieldReader r(j, file);
  TrainerState s;
  s.step = r.integer("step", 0);
  s.tokens = r.integer("tokens", 0);
  s.data_position = r.unsigned_integer("data_position");
  s.best_val_loss = r.number_or_null("best_val_loss", std::numeric_limits<double>::infinity());
  s.best_step = r.integer("best_step", -1);
  if (s.best_step > s.step) r.fail("best_step", "is " + std::to_string(s.best_step) + ", after the checkpoint's step " + std::to_string(s.step));
  if (r.has("window_loss") || r.has("window_steps")) {
    s.window_loss = r.number("window_loss");
    s.window_steps = r.integer("window_steps", 0);
    if (s.window_steps > s.step) r.fail("window_steps", "is " + std::to_string(s.window_steps) + ", more than the checkpoint's step " + std::to_string(s.step));
  }
  if (r.has("last_loss")) s.last_loss = r.number_or_null("last_loss", std::nan(""));
  if (r.has("last_grad_norm")) s.last_grad_norm = r.number("last_grad_norm");
  if (r.has("last_eval") && !r.at("last_eval").is_null()) {
    FieldReader e(r.at("last_eval"), file, "last_eval.");
    Evaluation ev;
    ev.loss = e.number("loss");
    ev.ppl = e.number("ppl");
    ev.bpb = e.number("bpb");
    ev.accuracy = e.number("accuracy");
    ev.tokens = e.integer("tokens", 0);
    s.last_eval = ev;
  }
  return s;
}

}  // namespace mixlab
