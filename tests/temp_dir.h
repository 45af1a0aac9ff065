// Test helper: a fresh, empty folder per test and process, removed again when the helper goes out of scope (so
// test runs do not pile folders up in the temp dir).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace coreserve::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              ("coreserve-test-" + name + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;  // best effort: a test that failed half way must not also throw here
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  operator const std::filesystem::path&() const { return path_; }  // NOLINT: used where a path is expected
  std::filesystem::path operator/(const std::filesystem::path& rest) const { return path_ / rest; }
  std::string string() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace coreserve::testing
