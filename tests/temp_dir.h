// Test helper: a fresh, empty folder per test and process.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace coreserve::testing {

// A fresh, empty folder under the test temp dir.
inline std::filesystem::path TempDir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("coreserve-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace coreserve::testing
