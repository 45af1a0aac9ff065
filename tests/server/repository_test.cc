#include "server/repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

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

// Version v of the tiny model: its weights times v, so each version's outputs say which one computed them.
void WriteVersion(const std::filesystem::path& dir, int64_t v) {
  onnx::ModelProto m = TinyMatMulModel();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  for (int i = 0; i < w->float_data_size(); ++i) w->set_float_data(i, w->float_data(i) * static_cast<float>(v));
  WriteModel(m, dir / std::to_string(v) / "model.onnx");
}

// y[0] of the entry's model for x = ones (1 x 4): 6 * its version.
float FirstOutput(const ModelEntry& e) {
  runtime::Tensor x = runtime::Tensor::Allocate(runtime::DataType::kFloat32, {1, 4});
  for (int i = 0; i < 4; ++i) x.data<float>()[i] = 1.0f;
  auto y = e.runner->session().Run({x}, nullptr);
  EXPECT_TRUE(y.ok()) << y.status();
  return y.ok() ? (*y)[0].data<float>()[0] : 0.0f;
}

TEST(ModelRepository, VersionPolicyServesTheChosenVersionsEachOnItsOwnRunner) {
  const auto root = TempDir("repo-versions");
  for (int64_t v : {1, 2, 5}) WriteVersion(root / "m", v);
  auto load = [&](const std::string& policy) {
    std::ofstream(root / "m" / "config.yaml", std::ios::trunc) << "version_policy: " << policy << "\n";
    auto repo = ModelRepository::Load({root.string()});
    EXPECT_TRUE(repo.ok()) << repo.status();
    std::vector<int64_t> versions;
    for (const ModelEntry& e : (*repo)->models()) {
      EXPECT_TRUE(e.ready) << e.error;
      if (e.ready) {
        EXPECT_EQ(FirstOutput(e), 6.0f * e.version);
      }
      versions.push_back(e.version);
    }
    return std::make_pair(*std::move(repo), versions);
  };
  auto [latest, latest_versions] = load("{latest: 2}");
  EXPECT_EQ(latest_versions, (std::vector<int64_t>{5, 2}));
  EXPECT_EQ((*latest->Find("m", ""))->version, 5);  // no version: the newest
  EXPECT_EQ((*latest->Find("m", "2"))->version, 2);
  EXPECT_EQ((*latest->Find("m", "5"))->served, (std::vector<int64_t>{5, 2}));
  EXPECT_THAT(std::string(latest->Find("m", "1").status().message()), HasSubstr("model 'm' has no served version '1'"));
  EXPECT_EQ(load("all").second, (std::vector<int64_t>{5, 2, 1}));
  EXPECT_EQ(load("{specific: [1, 5]}").second, (std::vector<int64_t>{5, 1}));
  EXPECT_EQ(load("{latest: 1}").second, (std::vector<int64_t>{5}));

  std::ofstream(root / "m" / "config.yaml", std::ios::trunc) << "version_policy: {specific: [4]}\n";
  auto missing = ModelRepository::Load({root.string()});
  ASSERT_TRUE(missing.ok());
  ASSERT_EQ((*missing)->models().size(), 1u);
  EXPECT_FALSE((*missing)->models()[0].ready);
  EXPECT_THAT((*missing)->models()[0].error, HasSubstr("version_policy names version 4, which has no folder"));
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
