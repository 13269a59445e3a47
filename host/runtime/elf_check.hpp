// Checks that a file is a complete ELF shared object for this machine before
// it is handed to dlopen: the dynamic loader maps a truncated library and the
// process dies with SIGBUS on first touch, so a short or foreign file must be
// refused by reading its headers first.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mixlab {

// What is wrong with `bytes` (a file of `file_size` bytes whose first bytes,
// at least its ELF and program headers, are `bytes`) as a shared object for
// this architecture; empty when nothing is. Checks the magic, 64-bit
// little-endian, this build's e_machine, ET_DYN, and that the program header
// table, every loadable segment and the section header table lie within the file.
std::string elf_shared_object_problem(std::string_view bytes, uint64_t file_size);

// Reads what elf_shared_object_problem needs from `file`; the problem, or empty.
std::string elf_file_problem(const std::string& file);

}  // namespace mixlab
