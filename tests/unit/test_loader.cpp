// The loader refuses every kind of broken plugin with a message that names the
// file and the reason, and never crashes.
#include "runtime/host_api.hpp"
#include "runtime/instance.hpp"
#include "runtime/registry.hpp"
#include "run_command.hpp"
#include "test_plugin_files.hpp"
#include "util/atomic_file.hpp"

#include <doctest/doctest.h>

#include <map>

#include <fstream>

using namespace mixlab;

namespace {

std::string load_error(const std::filesystem::path& file) {
  try {
    PluginLibrary::load(file);
  } catch (const LoadError& e) {
    return e.what();
  }
  return "";
}

std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("mixlab-test-" + name + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("loader: a good plugin loads and describes itself") {
  auto lib = PluginLibrary::load(test::test_plugin("prefix_mean"));
  REQUIRE(lib->impls().size() == 1);
  CHECK(std::string(lib->impls()[0]->name) == "prefix_mean");
  CHECK(std::string(lib->descriptor().build_tag) == host_build_tag());
  CHECK(lib->sha256().size() == 64);
}

TEST_CASE("loader: wrong ABI major is refused naming both versions and the file") {
  auto msg = load_error(test::test_plugin("wrong_abi"));
  CHECK(msg.find("libtest_wrong_abi.so") != std::string::npos);
  CHECK(msg.find("plugin ABI 2.0, host ABI 1.2") != std::string::npos);
}

TEST_CASE("loader: a library without the entry symbol is refused") {
  auto msg = load_error(test::test_plugin("no_entry"));
  CHECK(msg.find("libtest_no_entry.so") != std::string::npos);
  CHECK(msg.find("does not export mixlab_plugin_entry") != std::string::npos);
}

TEST_CASE("loader: a file that is not a shared library is refused") {
  auto dir = temp_dir("notaplugin");
  std::ofstream(dir / "libfake.so") << "this is text, not ELF";
  auto msg = load_error(dir / "libfake.so");
  CHECK(msg.find("libfake.so: not a loadable shared library") != std::string::npos);
  CHECK(load_error(dir / "missing.so").find("no such plugin file") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("registry: a duplicate name/impl/version is refused, naming the first provider") {
  auto dir = temp_dir("duplicate");
  std::filesystem::copy_file(test::test_plugin("prefix_mean"), dir / "liba.so");
  std::filesystem::copy_file(test::test_plugin("prefix_mean"), dir / "libb.so");
  Registry r;
  r.add_folder(dir);
  REQUIRE(r.impls().size() == 1);
  REQUIRE(r.refused().size() == 1);
  CHECK(r.refused()[0].second.find("prefix_mean/default@1.0.0 is already provided by") != std::string::npos);
  CHECK(r.refused()[0].second.find("liba.so") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("registry: selection errors list the candidates") {
  Registry r;
  r.add_file(test::test_plugin("prefix_mean"));
  r.add_file(test::test_plugin("noncausal"));
  CHECK(r.select({"prefix_mean", std::nullopt, std::nullopt}).label() == "prefix_mean/default@1.0.0");
  CHECK(r.select({"prefix_mean", "default", "^1.0"}).label() == "prefix_mean/default@1.0.0");
  auto message = [&](const Selector& s) {
    try {
      r.select(s);
    } catch (const SelectionError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message({"retnet", std::nullopt, std::nullopt}).find("available: noncausal, prefix_mean") != std::string::npos);
  auto pinned = message({"prefix_mean", std::nullopt, "^2"});
  CHECK(pinned.find("version = \"^2\"") != std::string::npos);
  CHECK(pinned.find("prefix_mean/default@1.0.0") != std::string::npos);
  CHECK(message({"prefix_mean", std::nullopt, "^x"}).find("malformed") != std::string::npos);
}

TEST_CASE("registry: without impl, a plugin's preferred implementation is chosen") {
  Registry r;
  r.add_folder(MIXLAB_PLUGIN_DIR);
  const std::vector<std::pair<std::string, std::string>> expected{
      {"attention", "sdpa"}, {"mamba", "chunked"}, {"retnet", "chunkwise"}, {"hyena", "fft"}, {"moe", "grouped"},
      {"mla", "absorbed"}, {"mlp", "default"}};
  for (const auto& [plugin, impl] : expected) {
    CAPTURE(plugin);
    CHECK(r.select({plugin, std::nullopt, std::nullopt}).impl->impl == impl);
  }
  // One preferred implementation per plugin.
  std::map<std::string, int> preferred;
  for (const auto& ref : r.impls())
    if (ref.impl->caps & MIXLAB_CAP_PREFERRED) ++preferred[ref.impl->name];
  for (const auto& [plugin, n] : preferred) CHECK(n == 1);
}

TEST_CASE("instance: a rejected config is an invalid-argument error naming the key") {
  Registry r;
  r.add_file(test::test_plugin("prefix_mean"));
  auto ref = r.select({"prefix_mean", std::nullopt, std::nullopt});
  try {
    PluginInstance::create(ref, 8, 16, R"({"scale": -1})");
    FAIL("accepted a bad config");
  } catch (const PluginError& e) {
    CHECK(e.code() == MIXLAB_INVALID_ARGUMENT);
    CHECK(std::string(e.what()).find("scale: must be > 0") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(PluginInstance::create(ref, 8, 16, R"({"scael": 1})"),
                       doctest::Contains("did you mean \"scale\""), PluginError);
}

TEST_CASE("instance: a forward that throws becomes an error with the plugin's message") {
  Registry r;
  r.add_file(test::test_plugin("throws"));
  auto inst = PluginInstance::create(r.impls()[0], 8, 16, "{}");
  auto params = inst->init_params(torch::kFloat32, torch::kCPU, 1, 0.02);
  CHECK_THROWS_WITH_AS(inst->forward(torch::randn({1, 4, 8}), params),
                       doctest::Contains("throws/default@1.0.0 forward: deliberate failure in forward"), PluginError);
}

TEST_CASE("instance: an output of the wrong shape is refused") {
  Registry r;
  r.add_file(test::test_plugin("wrong_shape"));
  auto inst = PluginInstance::create(r.impls()[0], 8, 16, "{}");
  auto params = inst->init_params(torch::kFloat32, torch::kCPU, 1, 0.02);
  CHECK_THROWS_WITH_AS(inst->forward(torch::randn({1, 4, 8}), params),
                       doctest::Contains("plugin produced shape [1, 4, 9], host expects [1, 4, 8]"), PluginError);
}

TEST_CASE("instance: NaN outputs pass through the ABI unchanged (conformance flags them)") {
  Registry r;
  r.add_file(test::test_plugin("nan_output"));
  auto inst = PluginInstance::create(r.impls()[0], 8, 16, "{}");
  auto params = inst->init_params(torch::kFloat32, torch::kCPU, 1, 0.02);
  auto y = inst->forward(torch::randn({1, 4, 8}), params).y;
  CHECK(torch::isnan(y).all().item<bool>());
}

TEST_CASE("atomic file: contents appear whole and a failed write leaves nothing") {
  auto dir = temp_dir("atomic");
  write_file_atomic(dir / "a.txt", "hello");
  std::ifstream in(dir / "a.txt");
  std::string s;
  in >> s;
  CHECK(s == "hello");
  CHECK_THROWS_WITH_AS(write_file_atomic(dir / "missing" / "b.txt", "x"), doctest::Contains("missing/b.txt"),
                       std::runtime_error);
  CHECK(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()) == 1);
  std::filesystem::remove_all(dir);
}

namespace {

// The first `bytes` bytes of `from`, written to `to`.
void copy_prefix(const std::filesystem::path& from, const std::filesystem::path& to, size_t bytes) {
  std::ifstream in(from, std::ios::binary);
  std::string data(bytes, '\0');
  in.read(data.data(), static_cast<std::streamsize>(bytes));
  std::ofstream(to, std::ios::binary) << data;
}

}  // namespace

TEST_CASE("loader: truncated and random-bytes libraries are refused before dlopen; the good one beside them loads") {
  auto dir = temp_dir("badelf");
  const auto good = test::test_plugin("prefix_mean");
  const auto size = std::filesystem::file_size(good);
  std::filesystem::copy_file(good, dir / "libgood.so");
  copy_prefix(good, dir / "libtruncated.so", size / 2);  // dlopen of this dies of SIGBUS
  copy_prefix(good, dir / "libheader_only.so", 64);       // the ELF header alone
  std::string noise(4096, '\0');
  uint32_t state = 12345;
  for (auto& c : noise) c = static_cast<char>((state = state * 1664525u + 1013904223u) >> 24);
  std::ofstream(dir / "librandom.so", std::ios::binary) << noise;
  std::ofstream(dir / "libmagic.so", std::ios::binary) << std::string("\x7f" "ELF", 4) + noise;

  CHECK(load_error(dir / "libtruncated.so").find("libtruncated.so: not a loadable shared library: truncated") !=
        std::string::npos);
  CHECK(load_error(dir / "libheader_only.so").find("truncated") != std::string::npos);
  CHECK(load_error(dir / "librandom.so").find("no ELF magic number") != std::string::npos);
  CHECK(load_error(dir / "libmagic.so").find("libmagic.so: not a loadable shared library") != std::string::npos);

  Registry r;
  r.add_folder(dir);
  REQUIRE(r.impls().size() == 1);
  CHECK(r.impls()[0].library->path().filename() == "libgood.so");
  CHECK(r.refused().size() == 4);
  // The same through `host`: a warning naming each bad file, and the good plugin works.
  auto listed = test::run_command("MIXLAB_PLUGIN_PATH=" + dir.string() + " " + MIXLAB_HOST_EXE + " plugins");
  INFO(listed.output);
  CHECK(listed.exit_code == 0);
  CHECK(listed.output.find("skipping plugin file " + (dir / "libtruncated.so").string()) != std::string::npos);
  CHECK(listed.output.find("prefix_mean") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("registry: an experiment naming a plugin that was found but refused gets the reason") {
  auto dir = temp_dir("refused");
  std::filesystem::copy_file(test::test_plugin("wrong_abi"), dir / "libtest_wrong_abi.so");
  std::filesystem::copy_file(test::test_plugin("prefix_mean"), dir / "libtest_prefix_mean.so");
  copy_prefix(test::test_plugin("noncausal"), dir / "libnoncausal.so", 100);
  Registry r;
  r.add_folder(dir);
  auto message = [&](const std::string& plugin) {
    try {
      r.select({plugin, std::nullopt, std::nullopt});
    } catch (const SelectionError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message("wrong_abi").find("plugin \"wrong_abi\" was found but refused: ") != std::string::npos);
  CHECK(message("wrong_abi").find("plugin ABI 2.0, host ABI 1.2") != std::string::npos);
  CHECK(message("noncausal").find("was found but refused: ") != std::string::npos);
  CHECK(message("noncausal").find("truncated") != std::string::npos);
  // A name no file resembles: the available plugins and every refused file with its reason.
  auto unknown = message("retnet");
  CHECK(unknown.find("no plugin named \"retnet\"; available: prefix_mean") != std::string::npos);
  CHECK(unknown.find("refused: " + (dir / "libtest_wrong_abi.so").string()) != std::string::npos);

  // `validate` and `run` say the same at the experiment's plugin key.
  for (const char* command : {"validate", "run"}) {
    auto r2 = test::run_command(std::string(MIXLAB_HOST_EXE) + " " + command + " " + MIXLAB_SOURCE_DIR +
                                "/tests/experiments/tiny.toml --plugin-path " + dir.string() +
                                " --set model.templates.block.mixer.plugin=wrong_abi");
    INFO(r2.output);
    CHECK(r2.exit_code != 0);
    CHECK(r2.exit_code < 128);
    CHECK(r2.output.find("model.templates.block.mixer.plugin") != std::string::npos);
    CHECK(r2.output.find("was found but refused") != std::string::npos);
    CHECK(r2.output.find("plugin ABI 2.0, host ABI 1.2") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}
