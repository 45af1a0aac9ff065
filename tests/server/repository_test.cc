#include "server/repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/onnx_builder.h"

namespace coreserve {
namespace {

using ::testing::HasSubstr;
using coreserve::testing::TempDir;
using coreserve::testing::TinyMatMulModel;
using coreserve::testing::WriteModel;

TEST(ModelRepository, ServesNewestVersionAndKeepsBrokenModelsWithTheirError) {
  const auto root = TempDir("repo");
  WriteModel(TinyMatMulModel(), root / "tiny" / "1" / "model.onnx");
  WriteModel(TinyMatMulModel(), root / "tiny" / "3" / "model.onnx");
  std::filesystem::create_directories(root / "tiny" / "notaversion");
  std::filesystem::create_directories(root / "broken" / "1");
  std::ofstream(root / "broken" / "1" / "model.onnx") << "garbage";
  std::filesystem::create_directories(root / "empty");
  std::filesystem::create_directories(root / ".hidden" / "1");

  auto repo = ModelRepository::Load({root.string()});
  ASSERT_TRUE(repo.ok()) << repo.status();
  ASSERT_EQ((*repo)->models().size(), 3u);  // broken, empty, tiny; .hidden is skipped

  auto tiny = (*repo)->Find("tiny", "");
  ASSERT_TRUE(tiny.ok());
  EXPECT_TRUE((*tiny)->ready);
  EXPECT_EQ((*tiny)->version, 3);
  EXPECT_EQ((*tiny)->versions, (std::vector<int64_t>{1, 3}));
  EXPECT_TRUE((*repo)->Find("tiny", "3").ok());
  EXPECT_EQ((*repo)->Find("tiny", "1").status().code(), absl::StatusCode::kNotFound);

  auto broken = (*repo)->Find("broken", "");
  ASSERT_TRUE(broken.ok());
  EXPECT_FALSE((*broken)->ready);
  EXPECT_THAT((*broken)->error, HasSubstr("not an ONNX model"));
  auto empty = (*repo)->Find("empty", "");
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT((*empty)->error, HasSubstr("no version folder"));

  EXPECT_FALSE((*repo)->AllReady());
  EXPECT_THAT(std::string((*repo)->Find("nope", "").status().message()), HasSubstr("unknown model 'nope'"));
}

TEST(ModelRepository, EmptyRepositoryIsReady) {
  auto repo = ModelRepository::Load({TempDir("repo-empty").string()});
  ASSERT_TRUE(repo.ok());
  EXPECT_TRUE((*repo)->AllReady());
  auto none = ModelRepository::Load({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE((*none)->models().empty());
}

TEST(ModelRepository, MissingRootAndDuplicateNamesFail) {
  EXPECT_EQ(ModelRepository::Load({"/nonexistent/repo"}).status().code(), absl::StatusCode::kNotFound);
  const auto a = TempDir("repo-a"), b = TempDir("repo-b");
  WriteModel(TinyMatMulModel(), a / "m" / "1" / "model.onnx");
  WriteModel(TinyMatMulModel(), b / "m" / "1" / "model.onnx");
  auto both = ModelRepository::Load({a.string(), b.string()});
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(std::string(both.status().message()), HasSubstr("model 'm' is in two repositories"));
}

}  // namespace
}  // namespace coreserve
