#include "runtime/session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <mutex>
#include <set>
#include <thread>

#include "runtime/npy.h"
#include "runtime/onnx_import.h"
#include "tests/onnx_builder.h"

namespace coreserve::runtime {
namespace {

using ::testing::HasSubstr;
using coreserve::testing::AddTensorValue;
using coreserve::testing::TempDir;
using coreserve::testing::WriteModel;

TEST(ThreadPool, ParallelForCoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int64_t total : {0, 1, 7, 1000, 100003}) {
      for (int64_t grain : {1, 16, 5000}) {
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(total));
        pool.ParallelFor(total, grain, [&](int64_t b, int64_t e) {
          ASSERT_LE(0, b);
          ASSERT_LT(b, e);
          ASSERT_LE(e, total);
          for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        for (int64_t i = 0; i < total; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " " << total << " " << i;
      }
    }
  }
}

TEST(ThreadPool, UsesItsWorkers) {
  ThreadPool pool(3);
  std::mutex mu;
  std::set<std::thread::id> ids;
  // Enough chunks that every thread gets some; each chunk waits briefly on an atomic spin so they overlap.
  std::atomic<int> arrived{0};
  pool.ParallelFor(3, 1, [&](int64_t, int64_t) {
    arrived.fetch_add(1);
    while (arrived.load() < 3) std::this_thread::yield();  // all three chunks must run at once to get past this
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(ids.size(), 3u);
}

TEST(Npy, RoundTripsEveryType) {
  const auto dir = TempDir("npy");
  for (DataType t : {DataType::kFloat32, DataType::kFloat64, DataType::kInt64, DataType::kInt32, DataType::kInt8,
                     DataType::kUInt8, DataType::kBool, DataType::kFloat16, DataType::kUInt16}) {
    for (const Shape& shape : {Shape{}, Shape{5}, Shape{2, 3, 4}, Shape{0, 3}}) {
      Tensor x = Tensor::Allocate(t, shape);
      for (std::size_t i = 0; i < x.bytes(); ++i) static_cast<uint8_t*>(x.raw())[i] = static_cast<uint8_t>(i * 7 % 2);
      const std::string path = (dir / "x.npy").string();
      ASSERT_TRUE(WriteNpy(path, x).ok());
      auto y = ReadNpy(path);
      ASSERT_TRUE(y.ok()) << y.status();
      EXPECT_EQ(y->type(), t);
      EXPECT_EQ(y->shape(), shape);
      EXPECT_EQ(0, std::memcmp(x.raw(), y->raw(), x.bytes()));
    }
  }
}

TEST(Npy, RejectsWhatItCannotRead) {
  const auto dir = TempDir("npy-bad");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return (dir / name).string();
  };
  auto header = [](const std::string& dict) {
    std::string h = dict;
    h.append(64 - (10 + h.size() + 1) % 64, ' ');
    h += '\n';
    return std::string("\x93NUMPY\x01\x00", 8) + std::string(1, static_cast<char>(h.size())) + std::string(1, '\0') + h;
  };
  EXPECT_THAT(std::string(ReadNpy(write("magic.npy", "hello")).status().message()), HasSubstr("bad magic"));
  EXPECT_THAT(std::string(ReadNpy(write("f.npy", header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }")))
                              .status().message()),
              HasSubstr("Fortran order"));
  EXPECT_THAT(std::string(ReadNpy(write("big.npy", header("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }")))
                              .status().message()),
              HasSubstr("dtype"));
  EXPECT_THAT(std::string(ReadNpy(write("short.npy", header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }") + "abc"))
                              .status().message()),
              HasSubstr("data shorter"));
  EXPECT_EQ(ReadNpy((dir / "absent.npy").string()).status().code(), absl::StatusCode::kNotFound);
}

// y = Relu(x + C1 * C2) - unused branch; C1 * C2 folds to a constant, the unused branch is dead.
onnx::ModelProto FoldableModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* opset = m.add_opset_import();
  opset->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("foldable");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"n", "3"});
  coreserve::testing::AddFloatInitializer(g, "c1", {3}, {0.5f, 1.5f, 2.5f});
  coreserve::testing::AddFloatInitializer(g, "c2", {3}, {-1.0f, -2.0f, -3.0f});
  using coreserve::testing::AddOnnxNode;
  AddOnnxNode(g, "Mul", {"c1", "c2"}, "prod");
  AddOnnxNode(g, "Add", {"x", "prod"}, "sum");
  AddOnnxNode(g, "Relu", {"sum"}, "y");
  AddOnnxNode(g, "Exp", {"x"}, "unused");
  AddTensorValue(g->add_output(), "y", onnx::TensorProto::FLOAT, {"n", "3"});
  return m;
}

TEST(Session, OptimizationFoldsAndPrunesWithoutChangingOutputs) {
  const auto dir = TempDir("fold");
  const std::string path = WriteModel(FoldableModel(), dir / "model.onnx");
  auto plain = Session::Load(path, SessionOptions{.optimize = false});
  auto optimized = Session::Load(path, SessionOptions{.optimize = true});
  ASSERT_TRUE(plain.ok() && optimized.ok());
  EXPECT_EQ((*plain)->graph().nodes.size(), 4u);
  EXPECT_EQ((*optimized)->graph().nodes.size(), 2u);  // Add and Relu remain
  Tensor x = Tensor::Allocate(DataType::kFloat32, {4, 3});
  for (int i = 0; i < 12; ++i) x.data<float>()[i] = static_cast<float>(i) - 5.5f;
  ThreadPool pool(2);
  auto a = (*plain)->Run({x}, &pool);
  auto b = (*optimized)->Run({x}, &pool);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ((*a)[0].shape(), (*b)[0].shape());
  for (int i = 0; i < 12; ++i) {
    // Independent reference: the same arithmetic written out.
    const float c = (0.5f + i % 3) * (-1.0f - i % 3);
    EXPECT_FLOAT_EQ((*b)[0].data<float>()[i], std::max(0.0f, x.data<float>()[i] + c));
    EXPECT_EQ((*a)[0].data<float>()[i], (*b)[0].data<float>()[i]);
  }
}

TEST(Session, RejectsCyclesAndNamesTheNode) {
  auto m = FoldableModel();
  // Make Add read Relu's output: Add -> Relu -> Add.
  m.mutable_graph()->mutable_node(1)->set_input(1, "y");
  const auto dir = TempDir("cycle");
  auto s = Session::Load(WriteModel(m, dir / "model.onnx"));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("cycle"));
}

// Hostile model files (found by tests/fuzz/onnx_load_fuzz.cc): each fails at load with an error naming the
// node, instead of a kernel reading an input that is not there or folding a constant no host could hold.
TEST(Session, LoadRefusesMalformedNodes) {
  const auto dir = TempDir("malformed");
  // IR version 10 is newer than Debian's onnx checker (IR 8), which then does not run: the runtime's own checks
  // are what stands between such a file and the kernels (the checker catches these cases in older files).
  auto load_error = [&](onnx::ModelProto m) {
    m.set_ir_version(10);
    auto s = Session::Load(WriteModel(m, dir / "model.onnx"));
    EXPECT_FALSE(s.ok());
    return s.ok() ? std::string() : std::string(s.status().message());
  };
  auto m = FoldableModel();
  m.mutable_graph()->mutable_node(1)->mutable_input()->RemoveLast();  // Add with one input
  EXPECT_THAT(load_error(m), HasSubstr("(Add): input 1 ('B') is required"));
  m = FoldableModel();
  m.mutable_graph()->mutable_node(1)->set_input(1, "");  // an empty name: an omitted input
  EXPECT_THAT(load_error(m), HasSubstr("input 1 ('B') is required"));
  m = FoldableModel();
  m.mutable_graph()->mutable_node(2)->add_input("x");  // Relu takes one input
  EXPECT_THAT(load_error(m), HasSubstr("2 inputs, the operator takes at most 1"));
  m = FoldableModel();
  m.mutable_graph()->mutable_node(2)->set_domain("coreserve");
  EXPECT_THAT(load_error(m), HasSubstr("the 'coreserve' operator domain is internal to the runtime"));

  // ConstantOfShape([2^20, 2^20]): 4 TiB of floats, folded at load.
  m = FoldableModel();
  auto* g = m.mutable_graph();
  coreserve::testing::AddInt64Initializer(g, "huge_shape", {2}, {int64_t{1} << 20, int64_t{1} << 20});
  coreserve::testing::AddOnnxNode(g, "ConstantOfShape", {"huge_shape"}, "huge");
  AddTensorValue(g->add_output(), "huge", onnx::TensorProto::FLOAT, {"a", "b"});
  EXPECT_THAT(load_error(m), HasSubstr("(ConstantOfShape): its constant output would take more than 1024 MiB"));
}

TEST(Session, InputValidationNamesTheInput) {
  const auto dir = TempDir("validate");
  auto s = Session::Load(WriteModel(FoldableModel(), dir / "model.onnx"));
  ASSERT_TRUE(s.ok());
  EXPECT_THAT(std::string((*s)->Run({}, nullptr).status().message()), HasSubstr("expected 1 inputs, got 0"));
  Tensor wrong_type = Tensor::Allocate(DataType::kInt64, {2, 3});
  EXPECT_THAT(std::string((*s)->Run({wrong_type}, nullptr).status().message()),
              HasSubstr("input 'x': expected float32, got int64"));
  Tensor wrong_shape = Tensor::Allocate(DataType::kFloat32, {2, 4});
  EXPECT_THAT(std::string((*s)->Run({wrong_shape}, nullptr).status().message()),
              HasSubstr("input 'x': expected shape [-1,3]"));
}

TEST(Session, ConcurrentRunsAgree) {
  const auto dir = TempDir("concurrent");
  auto s = Session::Load(WriteModel(FoldableModel(), dir / "model.onnx"));
  ASSERT_TRUE(s.ok());
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      ThreadPool pool(1);
      for (int iter = 0; iter < 50; ++iter) {
        Tensor x = Tensor::Allocate(DataType::kFloat32, {t + 1, 3});
        for (int i = 0; i < (t + 1) * 3; ++i) x.data<float>()[i] = static_cast<float>(i * (t + 1));
        auto out = (*s)->Run({x}, &pool);
        if (!out.ok()) {
          ++mismatches;
          continue;
        }
        for (int i = 0; i < (t + 1) * 3; ++i) {
          const float c = (0.5f + i % 3) * (-1.0f - i % 3);
          if ((*out)[0].data<float>()[i] != std::max(0.0f, x.data<float>()[i] + c)) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace coreserve::runtime
