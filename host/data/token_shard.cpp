#include "data/token_shard.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cstring>
#include <utility>

#include "data/error.hpp"
#include "util/atomic_file.hpp"

namespace mixlab::data {

static_assert(std::endian::native == std::endian::little, "token shards are little-endian");

namespace {

constexpr size_t kHeaderBytes = 1024;
constexpr size_t kLabelOffset = 64;
constexpr int32_t kMixlabTag = 0x424C584D;
constexpr int32_t kMixlabVersion = 1;

struct DtypeInfo {
  ShardDtype dtype;
  int32_t magic;
  int32_t version;
  const char* name;
};
constexpr std::array<DtypeInfo, 3> kDtypes = {{
    {ShardDtype::UInt16, 20240520, 1, "uint16"},
    {ShardDtype::UInt32, 20240801, 7, "uint32"},
    {ShardDtype::UInt8, 20261122, 1, "uint8"},
}};

const DtypeInfo& info(ShardDtype dtype) {
  for (const auto& entry : kDtypes)
    if (entry.dtype == dtype) return entry;
  throw DataError("token shard: unknown dtype");
}

}  // namespace

ShardDtype token_dtype(int64_t vocab_size) {
  return vocab_size <= 65536 ? ShardDtype::UInt16 : ShardDtype::UInt32;
}

void write_shard(const std::filesystem::path& path, ShardDtype dtype, const std::vector<uint32_t>& values,
                 const std::string& label) {
  if (label.size() > kHeaderBytes - kLabelOffset)
    throw DataError("token shard " + path.string() + ": label longer than " +
                    std::to_string(kHeaderBytes - kLabelOffset) + " bytes");
  const auto& dtype_info = info(dtype);
  const size_t width = static_cast<size_t>(dtype);
  const auto count = static_cast<int64_t>(values.size());
  std::array<int32_t, kHeaderBytes / 4> header{};
  header[0] = dtype_info.magic;
  header[1] = dtype_info.version;
  header[2] = count <= INT32_MAX ? static_cast<int32_t>(count) : -1;
  header[3] = kMixlabTag;
  header[4] = kMixlabVersion;
  header[5] = static_cast<int32_t>(width);
  header[6] = static_cast<int32_t>(static_cast<uint64_t>(count) & 0xffffffffu);
  header[7] = static_cast<int32_t>(static_cast<uint64_t>(count) >> 32);
  header[8] = static_cast<int32_t>(label.size());

  std::string contents(kHeaderBytes + values.size() * width, '\0');
  std::memcpy(contents.data(), header.data(), kHeaderBytes);
  std::memcpy(contents.data() + kLabelOffset, label.data(), label.size());
  const uint64_t limit = width == 4 ? UINT32_MAX : (uint64_t{1} << (8 * width)) - 1;
  char* out = contents.data() + kHeaderBytes;
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] > limit)
      throw DataError("token shard " + path.string() + ": value " + std::to_string(values[i]) + " does not fit " +
                      dtype_info.name);
    std::memcpy(out + i * width, &values[i], width);  // little-endian: the low bytes come first
  }
  write_file_atomic(path, contents);
}

MappedShard MappedShard::open(const std::filesystem::path& path, const std::string& expected_label,
                              ShardDtype expected_dtype) {
  const std::string where = "token shard " + path.string() + ": ";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(where + "cannot open (" + std::strerror(errno) + ")");
  struct stat status {};
  if (::fstat(fd, &status) != 0 || status.st_size < static_cast<off_t>(kHeaderBytes)) {
    ::close(fd);
    throw DataError(where + "shorter than its " + std::to_string(kHeaderBytes) + "-byte header");
  }
  MappedShard shard;
  shard.mapping_bytes_ = static_cast<size_t>(status.st_size);
  shard.mapping_ = ::mmap(nullptr, shard.mapping_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (shard.mapping_ == MAP_FAILED) {
    shard.mapping_ = nullptr;
    throw DataError(where + "mmap failed (" + std::strerror(errno) + ")");
  }

  std::array<int32_t, kHeaderBytes / 4> header{};
  std::memcpy(header.data(), shard.mapping_, kHeaderBytes);
  const DtypeInfo* dtype_info = nullptr;
  for (const auto& entry : kDtypes)
    if (entry.magic == header[0] && entry.version == header[1]) dtype_info = &entry;
  if (dtype_info == nullptr || header[3] != kMixlabTag || header[4] != kMixlabVersion ||
      header[5] != static_cast<int32_t>(dtype_info->dtype))
    throw DataError(where + "not a mixlab token shard (bad magic " + std::to_string(header[0]) + ", version " +
                    std::to_string(header[1]) + ")");
  shard.dtype_ = dtype_info->dtype;
  shard.count_ = static_cast<int64_t>(static_cast<uint32_t>(header[6]) | (static_cast<uint64_t>(header[7]) << 32));
  const size_t expected_bytes = kHeaderBytes + static_cast<size_t>(shard.count_) * static_cast<size_t>(header[5]);
  if (shard.count_ < 0 || expected_bytes != shard.mapping_bytes_)
    throw DataError(where + "header says " + std::to_string(shard.count_) + " " + dtype_info->name +
                    " values but the file has " + std::to_string(shard.mapping_bytes_) + " bytes (truncated?)");
  if (header[8] < 0 || static_cast<size_t>(header[8]) > kHeaderBytes - kLabelOffset)
    throw DataError(where + "bad label length " + std::to_string(header[8]));
  shard.label_.assign(static_cast<const char*>(shard.mapping_) + kLabelOffset, static_cast<size_t>(header[8]));
  if (!expected_label.empty() && shard.label_ != expected_label)
    throw DataError(where + "made with '" + shard.label_ + "', expected '" + expected_label + "'");
  if (expected_dtype != ShardDtype{} && expected_dtype != shard.dtype_)
    throw DataError(where + "holds " + dtype_info->name + ", expected " + info(expected_dtype).name);
  shard.values_ = static_cast<const uint8_t*>(shard.mapping_) + kHeaderBytes;
  return shard;
}

MappedShard::MappedShard(MappedShard&& other) noexcept { *this = std::move(other); }

MappedShard& MappedShard::operator=(MappedShard&& other) noexcept {
  if (this != &other) {
    if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_bytes_ = std::exchange(other.mapping_bytes_, 0);
    values_ = std::exchange(other.values_, nullptr);
    count_ = std::exchange(other.count_, 0);
    dtype_ = other.dtype_;
    label_ = std::move(other.label_);
  }
  return *this;
}

MappedShard::~MappedShard() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
}

}  // namespace mixlab::data
