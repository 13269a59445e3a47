// Models in and out (docs/interop.md): tiny models of every exported architecture
// (tests/interop/*.toml) are trained a few steps, exported, loaded by transformers
// with its own classes in a separate Python process (tests/interop/hf_logits.py)
// and their logits compared with `host forward` (fp32 relative RMS <= 1e-5);
// import -> export reproduces the tensors bit for bit; a compile folder serves
// forward, export and `run --init-from`; bad folders fail naming the file.
// The suite `interop` is its own ctest entry (excluded from `unit`); the
// `ffn = "none"` checks below it run with the unit tests.
#include "data/sentencepiece_tokenizer.hpp"
#include "experiment/experiment_data.hpp"
#include "experiment/loader.hpp"
#include "host_test_helpers.hpp"
#include "model/model.hpp"
#include "model/safetensors.hpp"
#include "runtime/registry.hpp"
#include "train/trained_run.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using mixlab::test::cache_args;
using mixlab::test::host;
using mixlab::test::scratch;

namespace {

fs::path interop_file(const std::string& name) { return fs::path(MIXLAB_SOURCE_DIR) / "tests" / "interop" / name; }

fs::path write_text(const fs::path& file, const std::string& text) {
  std::ofstream(file) << text;
  return file;
}

// Two rows of 20 ids below 256 (every test model reads bytes).
fs::path ids_file(const fs::path& dir) {
  std::ostringstream s;
  for (int r = 0; r < 2; ++r) {
    for (int t = 0; t < 20; ++t) s << (t ? " " : "") << (37 * t + 101 * r + 11) % 256;
    s << "\n";
  }
  return write_text(dir / "ids.txt", s.str());
}

std::map<std::string, torch::Tensor> tensors_of(const fs::path& file) {
  auto f = mixlab::load_safetensors(file);
  return {f.tensors.begin(), f.tensors.end()};
}

bool bitwise_equal(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || t.scalar_type() != it->second.scalar_type() || !torch::equal(t, it->second)) return false;
  }
  return true;
}

// `host ARGS` with the tests' data cache (for the commands without --set), and the test plugins.
mixlab::test::CommandResult host_cached(const std::string& args, bool with_stderr = true) {
  return mixlab::test::run_command("MIXLAB_CACHE=" + (fs::temp_directory_path() / "mixlab-test-cache").string() + " " +
                                       MIXLAB_HOST_EXE + " " + args + " --plugin-path " + MIXLAB_TEST_PLUGIN_DIR,
                                   0, with_stderr);
}

// Texts a tokenizer must agree on: leading, repeated and trailing spaces, tabs, empty lines,
// digits, punctuation, characters no training text had (byte fallback), and a long
// pseudo-random text of corpus words (many BPE merges and unigram paths at once).
std::vector<std::string> sample_texts() {
  std::vector<std::string> texts{"The old king saw her.",
                                 " the dog  sees   them today ",
                                 "Did the children see the cities?\nThey did not.\n",
                                 "\n\nline after two newlines\n\n",
                                 "tabs\tand\r\ncarriage returns",
                                 "digits 12345 and 3.14159, 2026-12-01",
                                 "Ünïcode ✓ — 東京 🙂 ½",
                                 "x",
                                 ""};
  static const char* words[] = {"the", "king", "old", "saw", "her", "dog", "sees", "them", "will", "not", "quickly",
                                "children", "cities", "and", "but", "because", "ancient", "big", "a", "an", "every"};
  static const char* gaps[] = {" ", " ", " ", "  ", ". ", ", ", "\n", "? ", "! ", "7", " 42 "};
  std::string long_text;
  uint64_t state = 12345;
  for (int i = 0; i < 600; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    long_text += words[(state >> 33) % std::size(words)];
    long_text += gaps[(state >> 17) % std::size(gaps)];
  }
  texts.push_back(long_text);
  return texts;
}

// mixlab's ids for the sample texts, as tests/interop/hf_tokenizer.py reads them.
fs::path token_cases(const fs::path& file, const mixlab::data::Tokenizer& tok, const nlohmann::json& unk_id) {
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& text : sample_texts()) cases.push_back({{"text", text}, {"ids", tok.encode(text)}});
  write_text(file, nlohmann::json{{"cases", cases}, {"unk_token_id", unk_id}}.dump());
  return file;
}

// Runs hf_tokenizer.py on (folder, cases) pairs; each folder must have no problem.
void check_hf_tokenizers(const std::string& pairs, int folders) {
  auto r = mixlab::test::run_command("python3 " + interop_file("hf_tokenizer.py").string() + pairs);
  CHECK_MESSAGE(r.exit_code == 0, r.output);
  std::istringstream lines(r.output);
  std::string line;
  int checked = 0;
  while (std::getline(lines, line)) {
    auto start = line.find("{\"dir\"");
    if (start == std::string::npos) continue;
    auto j = nlohmann::json::parse(line.substr(start));
    MESSAGE(j["dir"].get<std::string>() << ": " << j["class"].get<std::string>() << ", " << j["cases"] << " texts");
    CHECK_MESSAGE(j["problems"].empty(), j.dump());
    ++checked;
  }
  CHECK(checked == folders);
}

std::string must(const std::string& args) {
  auto r = host_cached(args);
  INFO(args << "\n" << r.output);
  REQUIRE(r.exit_code == 0);
  return r.output;
}

}  // namespace

TEST_SUITE("interop") {
  TEST_CASE("exported models load in transformers and give host forward's logits; import -> export is exact") {
    const fs::path dir = scratch("interop");
    fs::create_directories(dir);
    const auto ids = ids_file(dir);
    const std::map<std::string, std::string> classes{
        {"llama", "LlamaForCausalLM"},     {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"},
        {"mixtral", "MixtralForCausalLM"}, {"mamba2", "Mamba2ForCausalLM"},   {"bamba", "BambaForCausalLM"}};
    std::string pairs;
    for (const auto& [arch, cls] : classes) {
      const auto run = dir / ("run-" + arch), hf = dir / ("hf-" + arch), imported = dir / ("imported-" + arch);
      must("run " + interop_file(arch + ".toml").string() + " --output-dir " + run.string() + cache_args());
      auto out = must("export " + run.string() + " --format hf --output-dir " + hf.string());
      CHECK(out.find(arch) != std::string::npos);
      CHECK(fs::exists(hf / "config.json"));
      CHECK(fs::exists(hf / "generation_config.json"));
      CHECK(fs::exists(hf / "tokenizer.json"));
      must("forward " + run.string() + " --input " + ids.string() + " --output " + (dir / (arch + ".safetensors")).string());
      pairs += " " + hf.string() + " " + (dir / (arch + ".safetensors")).string();

      // Import, then export again: the same tensors bit for bit, and the same logits.
      must("import " + hf.string() + " --output-dir " + imported.string());
      must("export " + imported.string() + " --format hf --output-dir " + (dir / ("hf2-" + arch)).string());
      CHECK(bitwise_equal(tensors_of(hf / "model.safetensors"), tensors_of(dir / ("hf2-" + arch) / "model.safetensors")));
      must("forward " + imported.string() + " --input " + ids.string() + " --output " +
           (dir / (arch + "-imported.safetensors")).string());
      CHECK(torch::equal(tensors_of(dir / (arch + ".safetensors")).at("logits"),
                         tensors_of(dir / (arch + "-imported.safetensors")).at("logits")));
    }
    auto r = mixlab::test::run_command("python3 " + interop_file("hf_logits.py").string() + pairs);
    CHECK_MESSAGE(r.exit_code == 0, r.output);
    std::istringstream lines(r.output);
    std::string line;
    int compared = 0;
    while (std::getline(lines, line)) {
      auto start = line.find("{\"dir\"");
      if (start == std::string::npos) continue;
      auto j = nlohmann::json::parse(line.substr(start));
      std::string arch = fs::path(j["dir"].get<std::string>()).filename().string().substr(3);
      MESSAGE(arch << ": " << j["class"].get<std::string>() << " rel-RMS " << j["rel_rms"].get<double>());
      CHECK(j["class"] == classes.at(arch));
      CHECK(j["rel_rms"].get<double>() <= 1e-5);
      CHECK(j["not_loaded"].empty());
      ++compared;
    }
    CHECK(compared == 6);
    // The byte tokenizer.json of each: AutoTokenizer gives mixlab's ids (the byte values).
    std::string tokenizer_pairs;
    for (const auto& [arch, cls] : classes)
      tokenizer_pairs += " " + (dir / ("hf-" + arch)).string() + " " +
                         token_cases(dir / (arch + "-cases.json"), *mixlab::data::make_byte_tokenizer(), nullptr).string();
    check_hf_tokenizers(tokenizer_pairs, 6);

    // Folders transformers itself saved (its config.json conventions, e.g. Mamba2's infinite
    // time_step_limit) import to the same model.
    for (const std::string arch : {"mixtral", "mamba2"}) {
      const auto saved = dir / ("saved-" + arch);
      auto s = mixlab::test::run_command("python3 -c \"from transformers import AutoModelForCausalLM as A; "
                                         "A.from_pretrained('" + (dir / ("hf-" + arch)).string() + "').save_pretrained('" +
                                         saved.string() + "')\"");
      REQUIRE_MESSAGE(s.exit_code == 0, s.output);
      must("import " + saved.string() + " --output-dir " + (dir / ("saved-imported-" + arch)).string());
      must("forward " + (dir / ("saved-imported-" + arch)).string() + " --input " + ids.string() + " --output " +
           (dir / (arch + "-saved.safetensors")).string());
      CHECK(torch::equal(tensors_of(dir / (arch + ".safetensors")).at("logits"),
                         tensors_of(dir / (arch + "-saved.safetensors")).at("logits")));
    }
  }

  TEST_CASE("a compile folder serves forward, export and run --init-from; mismatched weights are listed") {
    const fs::path dir = scratch("interop-compile");
    fs::create_directories(dir);
    const auto ids = ids_file(dir);
    const auto compiled = dir / "compiled", hf = dir / "hf";
    const std::string llama = interop_file("llama.toml").string();
    must("compile " + llama + " --output-dir " + compiled.string() + cache_args());
    must("forward " + compiled.string() + " --input " + ids.string() + " --output " + (dir / "c.safetensors").string());
    must("export " + compiled.string() + " --format hf --output-dir " + hf.string());
    // The beginner preset (Llama: GQA 4:1, SwiGLU, tied, SentencePiece vocabulary planned, not trained), reduced.
    const auto preset = dir / "beginner";
    must("compile " + (fs::path(MIXLAB_SOURCE_DIR) / "experiments/arch/1b_arch_beginner_llama.toml").string() +
         " --output-dir " + preset.string() +
         " --set model.d_model=64 --set model.max_seq_len=64 --set data.seq_len=64 --set model.schedule.0.repeat=2"
         " --set model.templates.block.mixer.n_heads=4 --set model.templates.block.mixer.n_kv_heads=1"
         " --set model.templates.block.ffn.hidden=96 --set tokenizer.vocab_size=512" +
         // export trains the tokenizer: on the small grammar corpus rather than the KJV, to stay quick
         " --set data.source=builtin:grammar --set data.options.sentences=2000" + cache_args());
    must("forward " + preset.string() + " --input " + ids.string() + " --output " + (dir / "b.safetensors").string());
    must("export " + preset.string() + " --format hf --output-dir " + (dir / "beginner-hf").string());
    auto r = mixlab::test::run_command("python3 " + interop_file("hf_logits.py").string() + " " + hf.string() + " " +
                                       (dir / "c.safetensors").string() + " " + (dir / "beginner-hf").string() + " " +
                                       (dir / "b.safetensors").string());
    CHECK_MESSAGE(r.exit_code == 0, r.output);
    CHECK(r.output.find("\"class\": \"LlamaForCausalLM\"") != std::string::npos);

    // analyze routes the experiment's validation data through a compiled MoE model.
    must("compile " + interop_file("mixtral.toml").string() + " --output-dir " + (dir / "moe").string() + cache_args());
    must("analyze " + (dir / "moe").string() + " --batches 1 --output-dir " + (dir / "analysis").string());
    CHECK(fs::exists(dir / "analysis" / "routing.json"));

    // --init-from with a vanishing learning rate: the run's checkpoint holds the compiled weights.
    auto out = must("run " + llama + " --init-from " + compiled.string() + " --output-dir " + (dir / "run").string() +
                    " --set training.steps=1 --set optimizer.lr=1e-30" + cache_args());
    CHECK(out.find("initial weights from") != std::string::npos);
    auto start = tensors_of(compiled / "model.safetensors");
    auto after = tensors_of(dir / "run" / "checkpoints" / "step-00000001" / "model.safetensors");
    REQUIRE(start.size() == after.size());
    for (const auto& [name, t] : start) CHECK_MESSAGE(torch::allclose(t, after.at(name), 0, 1e-12), name);

    // A Mamba-2 experiment cannot start from Llama weights: every tensor that differs is listed.
    auto bad = host("run " + interop_file("mamba2.toml").string() + " --init-from " + compiled.string() +
                    " --output-dir " + (dir / "bad").string() + cache_args());
    CHECK(bad.exit_code == 1);
    CHECK(bad.output.find((compiled / "model.safetensors").string()) != std::string::npos);
    CHECK(bad.output.find("missing    layers.0.mixer.A_log") != std::string::npos);
    CHECK(bad.output.find("unexpected layers.0.mixer.wq") != std::string::npos);
    CHECK(bad.output.find("shape      lm_head.weight") == std::string::npos);
  }

  TEST_CASE("per-layer windows (Ministral, Qwen2), RoPE scaling on Mistral and Mixtral, Llama biases, geglu") {
    const fs::path dir = scratch("interop-variants");
    fs::create_directories(dir);
    const auto ids = ids_file(dir);
    const std::string llama = interop_file("llama.toml").string(), ministral = interop_file("ministral.toml").string();
    const std::string qkv = " --set model.templates.local.mixer.qkv_bias=true --set model.templates.global.mixer.qkv_bias=true";
    struct Variant {
      std::string name, command, cls;
    };
    // Biases start at zero: those models are trained a few steps so that a misplaced bias shows.
    const std::vector<Variant> variants{
        {"ministral", "compile " + ministral, "MinistralForCausalLM"},
        {"qwen2-windows", "compile " + ministral + qkv, "Qwen2ForCausalLM"},
        {"mistral-rope", "compile " + interop_file("mistral.toml").string() +
                             " --set 'model.templates.block.mixer.rope_scaling={type=\"linear\",factor=3.0}'",
         "MistralForCausalLM"},
        {"llama-bias", "run " + llama + " --set model.templates.block.mixer.qkv_bias=true" +
                           " --set model.templates.block.mixer.out_bias=true --set model.templates.block.ffn.bias=true",
         "LlamaForCausalLM"},
        {"llama-geglu", "compile " + llama + " --set model.templates.block.ffn.activation=geglu", "LlamaForCausalLM"},
        {"mixtral-rope", "compile " + interop_file("mixtral.toml").string() +
                             " --set 'model.templates.block.mixer.rope_scaling={type=\"linear\",factor=2.0}'",
         "MixtralForCausalLM"}};
    std::string pairs;
    for (const auto& v : variants) {
      const auto model = dir / v.name, hf = dir / ("hf-" + v.name), imported = dir / ("imported-" + v.name);
      must(v.command + " --output-dir " + model.string() + cache_args());
      must("export " + model.string() + " --format hf --output-dir " + hf.string());
      must("forward " + model.string() + " --input " + ids.string() + " --output " + (dir / (v.name + ".safetensors")).string());
      pairs += " " + hf.string() + " " + (dir / (v.name + ".safetensors")).string();
      // import -> export: the same config.json and tensors (the per-layer windows survive).
      must("import " + hf.string() + " --output-dir " + imported.string());
      must("export " + imported.string() + " --format hf --output-dir " + (dir / ("hf2-" + v.name)).string());
      CHECK(mixlab::test::read_json(hf / "config.json") == mixlab::test::read_json(dir / ("hf2-" + v.name) / "config.json"));
      CHECK(bitwise_equal(tensors_of(hf / "model.safetensors"), tensors_of(dir / ("hf2-" + v.name) / "model.safetensors")));
    }
    CHECK(mixlab::test::read_json(dir / "hf-qwen2-windows" / "config.json")["layer_types"] ==
          nlohmann::json{"sliding_attention", "full_attention", "sliding_attention"});
    auto r = mixlab::test::run_command("python3 " + interop_file("hf_logits.py").string() + pairs);
    CHECK_MESSAGE(r.exit_code == 0, r.output);
    std::istringstream lines(r.output);
    std::string line;
    size_t compared = 0;
    while (std::getline(lines, line)) {
      auto start = line.find("{\"dir\"");
      if (start == std::string::npos) continue;
      auto j = nlohmann::json::parse(line.substr(start));
      const auto& v = variants.at(compared++);
      MESSAGE(v.name << ": " << j["class"].get<std::string>() << " rel-RMS " << j["rel_rms"].get<double>());
      CHECK(j["class"] == v.cls);
    }
    CHECK(compared == variants.size());

    // Windows of two sizes: no HF config holds both.
    must("compile " + ministral + " --set model.templates.global.mixer.window=4 --output-dir " + (dir / "two").string() +
         cache_args());
    r = host("export " + (dir / "two").string() + " --format hf --output-dir " + (dir / "two-hf").string());
    CHECK(r.exit_code == 1);
    CHECK(r.output.find("an HF config holds one sliding_window") != std::string::npos);
    // Bamba without an attention layer: transformers' BambaModel fails on it.
    must("compile " + interop_file("bamba.toml").string() + " --set model.schedule.1.template=mamba --output-dir " +
         (dir / "bamba-mamba").string() + cache_args());
    r = host("export " + (dir / "bamba-mamba").string() + " --format hf --output-dir " + (dir / "bamba-mamba-hf").string());
    CHECK(r.exit_code == 1);
    CHECK(r.output.find("no attention layer: transformers' Bamba needs one") != std::string::npos);
  }

  TEST_CASE("SentencePiece: AutoTokenizer gives mixlab's ids; import carries tokenizer.model; foreign tokenizers are ids-only") {
    const fs::path dir = scratch("interop-sentencepiece");
    fs::create_directories(dir);
    const auto ids = ids_file(dir);
    const std::string llama = interop_file("llama.toml").string();
    std::string logit_pairs, tokenizer_pairs;
    for (const std::string type : {"bpe", "unigram"}) {
      const auto run = dir / ("run-" + type), hf = dir / ("hf-" + type);
      // As many pieces as the grammar gives (fewer than asked: the run uses the real count).
      must("run " + llama + " --output-dir " + run.string() + " --set tokenizer.kind=sentencepiece" +
           " --set tokenizer.model_type=" + type + " --set tokenizer.vocab_size=2000" + cache_args());
      auto note = must("export " + run.string() + " --format hf --output-dir " + hf.string());
      CHECK(note.find("SentencePiece " + type) != std::string::npos);
      for (const char* file : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"})
        CHECK_MESSAGE(fs::exists(hf / file), file);
      mixlab::TrainedRun trained = mixlab::load_trained_run(run);
      const auto& tok = trained.data().tokenizer();
      MESSAGE(type << ": " << tok.vocab_size() << " pieces");
      CHECK(tok.vocab_size() > 400);  // merges beyond the 256 byte pieces and the characters

      // The model file's settings as parse_sentencepiece_model reads them: those the trainer was given.
      auto exported = mixlab::data::SentencePieceTokenizer::load(hf / "tokenizer.model");
      const auto& m = exported->model();
      CHECK(m.model_type == type);
      CHECK(std::ssize(m.pieces) == tok.vocab_size());
      CHECK((m.byte_fallback && !m.add_dummy_prefix && !m.remove_extra_whitespaces && m.normalizer == "identity"));
      CHECK((m.unk_id == 0 && m.bos_id == -1 && m.eos_id == -1 && m.pad_id == -1));
      CHECK(exported->id() == tok.id());
      CHECK(mixlab::test::read_json(hf / "config.json")["bos_token_id"].is_null());

      tokenizer_pairs += " " + hf.string() + " " + token_cases(dir / (type + "-cases.json"), tok, 0).string();
      must("forward " + run.string() + " --input " + ids.string() + " --output " + (dir / (type + ".safetensors")).string());
      logit_pairs += " " + hf.string() + " " + (dir / (type + ".safetensors")).string();
    }
    check_hf_tokenizers(tokenizer_pairs, 2);
    auto r = mixlab::test::run_command("python3 " + interop_file("hf_logits.py").string() + logit_pairs);
    CHECK_MESSAGE(r.exit_code == 0, r.output);

    // Import carries tokenizer.model: generate with text gives what the trained run gives.
    const auto hf = dir / "hf-bpe", imported = dir / "imported";
    auto out = must("import " + hf.string() + " --output-dir " + imported.string());
    CHECK(out.find("tokenizer: SentencePiece bpe tokenizer.model") != std::string::npos);
    CHECK(fs::exists(imported / "tokenizer.model"));
    CHECK(mixlab::load_experiment(imported / "experiment.toml", {}).tokenizer.model_file ==
          (imported / "tokenizer.model").string());
    const std::string prompt = " --prompt 'The old king' --tokens 12 --temperature 0";
    auto from_run = host_cached("generate " + (dir / "run-bpe").string() + prompt, false);
    must("generate " + imported.string() + " --prompt x --tokens 1");  // builds its data cache (logged on stdout)
    auto from_import = host_cached("generate " + imported.string() + prompt, false);
    REQUIRE(from_run.exit_code == 0);
    REQUIRE_MESSAGE(from_import.exit_code == 0, from_import.output);
    CHECK(from_import.output == from_run.output);
    CHECK(from_run.output.rfind("The old king", 0) == 0);
    // A run or compile folder of the imported experiment carries its tokenizer.model along.
    const auto again = dir / "run-imported", compiled = dir / "compiled-imported";
    must("run " + (imported / "experiment.toml").string() + " --init-from " + imported.string() +
         " --set training.steps=1 --output-dir " + again.string() + cache_args());
    must("compile " + (imported / "experiment.toml").string() + " --output-dir " + compiled.string() + cache_args());
    for (const auto& folder : {again, compiled}) {
      CHECK(fs::exists(folder / "tokenizer.model"));
      auto g = host_cached("generate " + folder.string() + prompt, false);
      CHECK_MESSAGE(g.exit_code == 0, g.output);
    }

    // A tokenizer.model whose piece count is not config.json's vocab_size: an error naming both files.
    fs::copy(hf, dir / "mismatch");
    auto config = mixlab::test::read_json(hf / "config.json");
    config["vocab_size"] = config["vocab_size"].get<int64_t>() + 1;
    write_text(dir / "mismatch" / "config.json", config.dump());
    r = host("import " + (dir / "mismatch").string() + " --output-dir " + (dir / "mismatch-imported").string());
    CHECK(r.exit_code == 1);
    CHECK(r.output.find((dir / "mismatch" / "tokenizer.model").string() + ": " +
                        std::to_string(config["vocab_size"].get<int64_t>() - 1) + " pieces, but " +
                        (dir / "mismatch" / "config.json").string() + " has vocab_size") != std::string::npos);
    CHECK(!fs::exists(dir / "mismatch-imported"));

    // An experiment naming a model file whose piece count is not tokenizer.vocab_size.
    auto experiment = mixlab::load_experiment(imported / "experiment.toml", {"tokenizer.vocab_size=300"});
    const std::string says = "tokenizer.model_file " + (imported / "tokenizer.model").string() + " has ";
    CHECK_THROWS_WITH_AS(mixlab::open_dataset(experiment), doctest::Contains(says.c_str()), mixlab::data::DataError);

    // A folder whose tokenizer mixlab cannot read (a BPE tokenizer.json only): imported ids-only, with a warning.
    fs::create_directories(dir / "json-only");
    for (const char* file : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
      fs::copy(hf / file, dir / "json-only" / file);
    out = must("import " + (dir / "json-only").string() + " --output-dir " + (dir / "json-only-imported").string());
    CHECK(out.find("ids-only: the tokenizer is not imported (" + (dir / "json-only" / "tokenizer.json").string()) !=
          std::string::npos);
    CHECK(!fs::exists(dir / "json-only-imported" / "tokenizer.model"));
    must("forward " + (dir / "json-only-imported").string() + " --input " + ids.string() + " --output " +
         (dir / "json-only.safetensors").string());
  }

  TEST_CASE("export refuses what no HF class expresses; bad folders fail naming the file") {
    const fs::path dir = scratch("interop-errors");
    fs::create_directories(dir);
    const std::string llama = interop_file("llama.toml").string();

    // Post-norm with a learned position table: refused, each difference listed.
    must("compile " + llama + " --output-dir " + (dir / "post").string() +
         " --set model.norm_position=post --set model.positional=learned" + cache_args());
    auto r = host("export " + (dir / "post").string() + " --format hf --output-dir " + (dir / "post-hf").string());
    CHECK(r.exit_code == 1);
    CHECK(r.output.find("norm_position") != std::string::npos);
    CHECK(r.output.find("positional") != std::string::npos);
    CHECK(!fs::exists(dir / "post-hf"));
    CHECK(!fs::exists(dir / "post-hf.tmp"));

    // A plugin no HF class has (the test mixer prefix_mean).
    must("compile " + mixlab::test::tiny_experiment() + " --output-dir " + (dir / "tiny").string() + cache_args());
    r = host("export " + (dir / "tiny").string() + " --format hf --output-dir " + (dir / "tiny-hf").string());
    CHECK(r.exit_code == 1);
    CHECK(r.output.find("prefix_mean") != std::string::npos);

    // Multi-token prediction modules (training only) are left out, said so; transformers'
    // Llama computes the main model's logits exactly.
    must("compile " + llama + " --output-dir " + (dir / "mtp").string() + " --set model.mtp.depth=2" + cache_args());
    auto said = must("export " + (dir / "mtp").string() + " --format hf --output-dir " + (dir / "hf-mtp").string());
    CHECK(said.find("left out: the 2 multi-token prediction module(s)") != std::string::npos);
    for (const auto& [name, t] : tensors_of(dir / "hf-mtp" / "model.safetensors")) CHECK(name.find("mtp") == std::string::npos);
    const auto ids = ids_file(dir);
    must("forward " + (dir / "mtp").string() + " --input " + ids.string() + " --output " + (dir / "mtp.safetensors").string());
    r = mixlab::test::run_command("python3 " + interop_file("hf_logits.py").string() + " " + (dir / "hf-mtp").string() +
                                  " " + (dir / "mtp.safetensors").string());
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    auto at = r.output.find("{\"dir\"");
    REQUIRE(at != std::string::npos);
    auto compared = nlohmann::json::parse(r.output.substr(at, r.output.find('\n', at) - at));
    CHECK(compared["class"] == "LlamaForCausalLM");
    CHECK(compared["rel_rms"].get<double>() <= 1e-5);
    CHECK(compared["not_loaded"].empty());

    // Not a model folder.
    fs::create_directories(dir / "empty");
    std::ofstream(dir / "ids.txt") << "1 2 3\n";
    r = host("forward " + (dir / "empty").string() + " --input " + (dir / "ids.txt").string() + " --output y");
    CHECK(r.exit_code == 1);
    CHECK(r.output.find((dir / "empty").string() + ": not a run, checkpoint, compile or import folder") != std::string::npos);

    // An HF folder: a truncated model.safetensors, an unsupported model_type.
    must("compile " + llama + " --output-dir " + (dir / "c").string() + cache_args());
    must("export " + (dir / "c").string() + " --format hf --output-dir " + (dir / "hf").string());
    fs::copy(dir / "hf", dir / "cut");
    fs::resize_file(dir / "cut" / "model.safetensors", fs::file_size(dir / "cut" / "model.safetensors") / 2);
    r = host("import " + (dir / "cut").string() + " --output-dir " + (dir / "cut-imported").string());
    CHECK(r.exit_code == 1);
    CHECK(r.output.find((dir / "cut" / "model.safetensors").string()) != std::string::npos);
    CHECK(!fs::exists(dir / "cut-imported"));
    fs::copy(dir / "hf", dir / "gpt2");
    auto config = mixlab::test::read_json(dir / "gpt2" / "config.json");
    config["model_type"] = "gpt2";
    write_text(dir / "gpt2" / "config.json", config.dump());
    r = host("import " + (dir / "gpt2").string() + " --output-dir " + (dir / "gpt2-imported").string());
    CHECK(r.exit_code == 1);
    CHECK(r.output.find((dir / "gpt2" / "config.json").string() + ": model_type \"gpt2\" is not supported") !=
          std::string::npos);

    // A model whose vocabulary is not the tokenizer's: ids work, text is refused. (compile plans
    // 5000 SentencePiece pieces; the grammar gives fewer, so export writes no tokenizer files and
    // the import is ids-only: its experiment says byte.)
    must("compile " + llama + " --output-dir " + (dir / "sp").string() +
         " --set tokenizer.kind=sentencepiece --set tokenizer.vocab_size=5000" + cache_args());
    auto note = must("export " + (dir / "sp").string() + " --format hf --output-dir " + (dir / "sp-hf").string());
    CHECK(note.find("no tokenizer files: the model's vocabulary is 5000, the experiment's sentencepiece tokenizer has") !=
          std::string::npos);
    CHECK(!fs::exists(dir / "sp-hf" / "tokenizer.json"));
    note = must("import " + (dir / "sp-hf").string() + " --output-dir " + (dir / "sp-imported").string());
    CHECK(note.find("ids-only") != std::string::npos);
    r = host_cached("generate " + (dir / "sp-imported").string() + " --prompt hi --tokens 2");
    CHECK(r.exit_code == 1);
    CHECK(r.output.find((dir / "sp-imported" / "model.safetensors").string() +
                        ": the model has a vocabulary of 5000 tokens, the experiment's tokenizer (byte on "
                        "builtin:grammar) has 256") != std::string::npos);
  }
}

TEST_CASE("ffn = \"none\" and mixer = \"none\": a layer without that branch, its norm or its parameters") {
  const fs::path dir = scratch("ffn-none");
  fs::create_directories(dir);
  const std::string head = "[model]\nd_model = 16\nmax_seq_len = 8\n[data]\nsource = \"builtin:grammar\"\nseq_len = 8\n"
                           "[training]\nsteps = 1\n[[model.schedule]]\ntemplate = \"t\"\n";
  auto file = write_text(dir / "mlp_only.toml", head + "[model.templates.t]\nmixer = \"none\"\n"
                                                       "ffn = { plugin = \"mlp\", activation = \"swiglu\", hidden = 24 }\n");
  auto config = mixlab::load_experiment(file, {});
  REQUIRE(config.layers().size() == 1);
  CHECK(config.layers()[0].mixer.none);
  CHECK(config.to_json()["model"]["templates"]["t"]["mixer"] == "none");

  // A mixer-less layer is h + mlp(rmsnorm(h)): checked against the same ops written out.
  auto registry = mixlab::experiment_registry(config);
  mixlab::Model model(config, registry, 256, torch::kCPU);
  std::map<std::string, torch::Tensor> p;
  for (const auto& n : model.parameters()) p[n.name] = n.tensor.detach();
  CHECK(p.count("layers.0.norm1.weight") == 0);
  CHECK(p.count("layers.0.norm2.weight") == 1);
  torch::NoGradGuard no_grad;
  auto tokens = torch::tensor({{3, 1, 4, 1, 5, 9}}, torch::kInt64);
  auto rms = [](const torch::Tensor& x, const torch::Tensor& w) { return x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-5) * w; };
  auto h = p["embed.weight"].index({tokens});
  auto x = rms(h, p["layers.0.norm2.weight"]);
  h = h + torch::linear(torch::silu(torch::linear(x, p["layers.0.ffn.w_in"])) * torch::linear(x, p["layers.0.ffn.w_gate"]),
                        p["layers.0.ffn.w_out"]);
  auto expected = torch::linear(rms(h, p["final_norm.weight"]), p["embed.weight"]);
  auto logits = model.forward(tokens, false, 0).logits;
  CHECK(((logits - expected).pow(2).mean().sqrt() / expected.pow(2).mean().sqrt()).item<double>() < 1e-6);
  // Decode skips the absent mixer too: prefill and one step equal the forward.
  REQUIRE(model.can_decode());
  auto session = model.start_decode(1);
  auto decoded = torch::cat({session.step(tokens.slice(1, 0, 5)), session.step(tokens.slice(1, 5, 6))}, 1);
  CHECK(torch::allclose(decoded, logits, 1e-5, 1e-6));

  auto both = write_text(dir / "both.toml", head + "[model.templates.t]\nmixer = \"none\"\nffn = \"none\"\n");
  CHECK_THROWS_WITH_AS(mixlab::load_experiment(both, {}), doctest::Contains("both \"none\""), mixlab::ExperimentError);
  auto other = write_text(dir / "other.toml", head + "[model.templates.t]\nmixer = \"nothing\"\nffn = \"none\"\n");
  CHECK_THROWS_WITH_AS(mixlab::load_experiment(other, {}), doctest::Contains("expected a plugin table or \"none\""),
                       mixlab::ExperimentError);
}
