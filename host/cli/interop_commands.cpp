// `host export` and `host import`: models to and from Hugging Face folders (docs/interop.md).
#include "cli/commands.hpp"
#include "interop/hf_export.hpp"
#include "interop/hf_import.hpp"

#include <iostream>

namespace mixlab::cli {

void add_interop_commands(CLI::App& app, Action& action) {
  static std::string model_dir, format = "hf", export_dir;
  auto* exp = app.add_subcommand("export", "write a model as a Hugging Face folder that transformers loads with its own "
                                           "classes (no remote code); refused with the differences when none fits exactly");
  exp->add_option("model_dir", model_dir, "run, checkpoint, compile or import folder")->required();
  exp->add_option("--format", format, "output format")->check(CLI::IsMember({"hf"}));
  exp->add_option("--output-dir", export_dir, "the folder to create (must not exist)")->required();
  exp->callback([&] {
    action = [&] {
      auto r = export_hf(model_dir, export_dir);
      std::cout << export_dir << ": " << r.model_type << " (transformers.AutoModelForCausalLM.from_pretrained); "
                << r.tokenizer_note << (r.left_out.empty() ? "" : "; " + r.left_out) << "\n";
      return 0;
    };
  });

  static std::string hf_dir, import_dir;
  static bool ids_only = false;
  auto* imp = app.add_subcommand("import", "turn a local Hugging Face folder (Llama, Mistral, Ministral, Qwen2, "
                                           "Mixtral, Mamba2, Bamba) into a mixlab experiment and weights");
  imp->add_option("hf_dir", hf_dir, "folder with config.json and model.safetensors")->required();
  imp->add_option("--output-dir", import_dir, "the folder to create (must not exist)")->required();
  imp->add_flag("--ids-only", ids_only, "leave the folder's tokenizer out (the model is then driven by token ids)");
  imp->callback([&] {
    action = [&] {
      auto r = import_hf(hf_dir, import_dir, ids_only);
      std::cout << import_dir << ": " << r.model_type << " imported (experiment.toml, model.safetensors); tokenizer: "
                << r.tokenizer_note << "\n";
      return 0;
    };
  });
}

}  // namespace mixlab::cli
