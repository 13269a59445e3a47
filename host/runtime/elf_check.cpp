#include "runtime/elf_check.hpp"

#include <elf.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace mixlab {
namespace {

#if defined(__x86_64__)
constexpr uint16_t kMachine = EM_X86_64;
constexpr const char* kMachineName = "x86-64";
#elif defined(__aarch64__)
constexpr uint16_t kMachine = EM_AARCH64;
constexpr const char* kMachineName = "AArch64";
#else
#error "mixlab: set the ELF machine of this architecture in runtime/elf_check.cpp"
#endif

// [offset, offset + count * size) lies within [0, file_size), without overflow.
bool within(uint64_t offset, uint64_t count, uint64_t size, uint64_t file_size) {
  uint64_t bytes = 0, end = 0;
  return !__builtin_mul_overflow(count, size, &bytes) && !__builtin_add_overflow(offset, bytes, &end) && end <= file_size;
}

// Program headers can sit anywhere in the file; a few KiB covers every real library.
constexpr uint64_t kMaxProgramHeaderEnd = 1 << 20;

}  // namespace

std::string elf_shared_object_problem(std::string_view bytes, uint64_t file_size) {
  if (file_size < sizeof(Elf64_Ehdr) || bytes.size() < sizeof(Elf64_Ehdr))
    return "not an ELF file (" + std::to_string(file_size) + " bytes, shorter than an ELF header)";
  Elf64_Ehdr h;
  std::memcpy(&h, bytes.data(), sizeof h);
  if (std::memcmp(h.e_ident, ELFMAG, SELFMAG) != 0) return "not an ELF file (no ELF magic number)";
  if (h.e_ident[EI_CLASS] != ELFCLASS64) return "a 32-bit ELF file; this host is 64-bit";
  if (h.e_ident[EI_DATA] != ELFDATA2LSB) return "a big-endian ELF file; this host is little-endian";
  if (h.e_machine != kMachine)
    return "built for ELF machine " + std::to_string(h.e_machine) + ", this host is " + kMachineName + " (" +
           std::to_string(kMachine) + ")";
  if (h.e_type != ET_DYN) return "an ELF file of type " + std::to_string(h.e_type) + ", not a shared object (ET_DYN)";
  if (h.e_phentsize != sizeof(Elf64_Phdr) || h.e_phnum == 0)
    return "malformed ELF program header table (entry size " + std::to_string(h.e_phentsize) + ", " +
           std::to_string(h.e_phnum) + " entries)";
  if (!within(h.e_phoff, h.e_phnum, sizeof(Elf64_Phdr), file_size))
    return "truncated: the program header table ends past the end of the file (" + std::to_string(file_size) +
           " bytes)";
  if (!within(h.e_phoff, h.e_phnum, sizeof(Elf64_Phdr), bytes.size()))
    return "the program header table lies beyond the first " + std::to_string(bytes.size()) + " bytes";
  for (uint16_t i = 0; i < h.e_phnum; ++i) {
    Elf64_Phdr p;
    std::memcpy(&p, bytes.data() + h.e_phoff + i * sizeof(Elf64_Phdr), sizeof p);
    if (p.p_type == PT_LOAD && !within(p.p_offset, 1, p.p_filesz, file_size))
      return "truncated: loadable segment " + std::to_string(i) + " ends at byte " +
             std::to_string(p.p_offset + p.p_filesz) + ", the file has " + std::to_string(file_size);
  }
  if (h.e_shnum > 0 && (h.e_shentsize != sizeof(Elf64_Shdr) || !within(h.e_shoff, h.e_shnum, sizeof(Elf64_Shdr), file_size)))
    return "truncated: the section header table ends past the end of the file (" + std::to_string(file_size) +
           " bytes)";
  return "";
}

std::string elf_file_problem(const std::string& file) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(file, ec);
  std::ifstream in(file, std::ios::binary);
  if (ec || !in) return "cannot read the file";
  // The ELF header, then as far as the program header table reaches (bounded).
  std::string bytes(std::min<uint64_t>(size, sizeof(Elf64_Ehdr)), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (bytes.size() == sizeof(Elf64_Ehdr)) {
    Elf64_Ehdr h;
    std::memcpy(&h, bytes.data(), sizeof h);
    uint64_t end = 0;
    if (!__builtin_add_overflow(h.e_phoff, uint64_t{h.e_phnum} * h.e_phentsize, &end) && end > bytes.size() &&
        end <= std::min(size, kMaxProgramHeaderEnd)) {
      bytes.resize(end);
      in.read(bytes.data() + sizeof(Elf64_Ehdr), static_cast<std::streamsize>(end - sizeof(Elf64_Ehdr)));
    }
  }
  if (!in) return "cannot read the file";
  return elf_shared_object_problem(bytes, size);
}

}  // namespace mixlab
