// Runs the ONNX backend node tests (Debian's libonnx-testdata: one model per case with reference inputs and
// outputs computed by the ONNX reference implementation) through the runtime, for every case whose operators
// the runtime implements. Prints pass/fail counts per operator. Fails when a case fails that is not listed, with
// its reason, in onnx_node_expected_failures.txt, or when a listed case passes (so the list stays true).
//
// Each case also checks the runtime's shape inference: the model's declared output types and shapes are removed,
// and the ones inferred again must agree with the reference outputs (same type, same rank, every dim inferred as
// static equal to the reference's). A case whose output shape stays unknown is counted, not failed.
//
// usage: onnx_node_conformance DATA_DIR EXPECTED_FAILURES_FILE
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "onnx/onnx_pb.h"
#include "runtime/onnx_import.h"
#include "runtime/session.h"

namespace fs = std::filesystem;
using namespace coreserve::runtime;

namespace {

// The ONNX backend test runner's default tolerance: |got - want| <= atol + rtol * |want|.
constexpr double kRtol = 1e-3, kAtol = 1e-7;

double At(const Tensor& t, int64_t i) {
  switch (t.type()) {
    case DataType::kFloat32: return t.data<float>()[i];
    case DataType::kFloat64: return t.data<double>()[i];
    case DataType::kInt64: return static_cast<double>(t.data<int64_t>()[i]);
    case DataType::kInt32: return t.data<int32_t>()[i];
    case DataType::kInt16: return t.data<int16_t>()[i];
    case DataType::kInt8: return t.data<int8_t>()[i];
    case DataType::kUInt8: return t.data<uint8_t>()[i];
    case DataType::kUInt16: return t.data<uint16_t>()[i];
    case DataType::kUInt32: return t.data<uint32_t>()[i];
    case DataType::kUInt64: return static_cast<double>(t.data<uint64_t>()[i]);
    case DataType::kBool: return t.data<bool>()[i];
    default: return std::nan("");
  }
}

std::string Compare(const Tensor& got, const Tensor& want) {
  if (got.type() != want.type()) return std::string("type ") + DataTypeName(got.type()) + " vs " + DataTypeName(want.type());
  if (got.shape() != want.shape()) return "shape " + ShapeString(got.shape()) + " vs " + ShapeString(want.shape());
  const bool exact = want.type() != DataType::kFloat32 && want.type() != DataType::kFloat64;
  for (int64_t i = 0; i < want.elements(); ++i) {
    const double g = At(got, i), w = At(want, i);
    if (std::isnan(w) && std::isnan(g)) continue;
    if (std::isinf(w) && g == w) continue;
    const bool ok = exact ? g == w : std::fabs(g - w) <= kAtol + kRtol * std::fabs(w);
    if (!ok) {
      std::ostringstream s;
      s << "element " << i << ": " << g << " vs " << w;
      return s.str();
    }
  }
  return "";
}

// Runs every test_data_set_* of one case; "" on success, else the first problem.
std::string RunCase(const fs::path& dir) {
  auto session = Session::Load((dir / "model.onnx").string());
  if (!session.ok()) return std::string("load: ") + std::string(session.status().message());
  for (const auto& set : fs::directory_iterator(dir)) {
    if (!set.is_directory() || set.path().filename().string().rfind("test_data_set_", 0) != 0) continue;
    std::vector<Tensor> inputs;
    for (std::size_t i = 0; i < (*session)->inputs().size(); ++i) {
      auto t = ReadTensorProtoFile((set.path() / ("input_" + std::to_string(i) + ".pb")).string());
      if (!t.ok()) return std::string("input: ") + std::string(t.status().message());
      inputs.push_back(*std::move(t));
    }
    ThreadPool pool(2);
    auto outputs = (*session)->Run(inputs, &pool);
    if (!outputs.ok()) return std::string("run: ") + std::string(outputs.status().message());
    for (std::size_t i = 0; i < outputs->size(); ++i) {
      auto want = ReadTensorProtoFile((set.path() / ("output_" + std::to_string(i) + ".pb")).string());
      if (!want.ok()) return std::string("output: ") + std::string(want.status().message());
      const std::string diff = Compare((*outputs)[i], *want);
      if (!diff.empty()) return "output " + std::to_string(i) + ": " + diff;
    }
  }
  return "";
}

struct ShapeCount {
  int static_shape = 0, partial = 0, unknown = 0;
};

// Infers the outputs of the case's model with their declared types and shapes removed and compares them with the
// first data set's reference outputs; "" when they agree.
std::string CheckInferredShapes(const fs::path& dir, ShapeCount& count) {
  auto model = ParseOnnxFile((dir / "model.onnx").string());
  if (!model.ok()) return std::string("parse: ") + std::string(model.status().message());
  for (auto& output : *model->mutable_graph()->mutable_output()) {
    output.mutable_type()->mutable_tensor_type()->clear_shape();
    output.mutable_type()->mutable_tensor_type()->set_elem_type(0);
  }
  auto graph = ImportOnnx(*model, dir.string());
  if (!graph.ok()) return std::string("import: ") + std::string(graph.status().message());
  for (std::size_t i = 0; i < graph->outputs.size(); ++i) {
    auto want = ReadTensorProtoFile((dir / "test_data_set_0" / ("output_" + std::to_string(i) + ".pb")).string());
    if (!want.ok()) return "";  // a case without reference data: nothing to compare
    const Value& v = graph->values[graph->outputs[i]];
    const std::string where = "inferred output " + std::to_string(i) + ": ";
    if (v.type != DataType::kUndefined && v.type != want->type()) {
      return where + "type " + DataTypeName(v.type) + " vs " + DataTypeName(want->type());
    }
    if (!v.shape) {
      if (std::getenv("CONFORMANCE_VERBOSE")) std::fprintf(stderr, "unknown shape: %s\n", dir.filename().c_str());
      ++count.unknown;
      continue;
    }
    bool all_static = true, agrees = v.shape->size() == want->shape().size();
    for (std::size_t d = 0; agrees && d < v.shape->size(); ++d) {
      all_static = all_static && (*v.shape)[d] >= 0;
      agrees = (*v.shape)[d] < 0 || (*v.shape)[d] == want->shape()[d];
    }
    if (!agrees) return where + "shape " + ShapeString(*v.shape) + " vs " + ShapeString(want->shape());
    if (!all_static && std::getenv("CONFORMANCE_VERBOSE")) {
      std::fprintf(stderr, "partly static shape: %s %s\n", dir.filename().c_str(), ShapeString(*v.shape).c_str());
    }
    ++(all_static ? count.static_shape : count.partial);
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DATA_DIR EXPECTED_FAILURES_FILE\n", argv[0]);
    return 2;
  }
  const fs::path data(argv[1]);
  if (!fs::is_directory(data)) {
    std::fprintf(stderr, "%s: not a directory (install Debian's libonnx-testdata)\n", argv[1]);
    return 2;
  }
  // Expected failures: "test_name  reason", one per line; '#' starts a comment.
  std::map<std::string, std::string> expected;
  std::ifstream list(argv[2]);
  for (std::string line; std::getline(list, line);) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t space = line.find_first_of(" \t");
    expected[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(line.find_first_not_of(" \t", space));
  }

  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(data)) {
    if (e.is_directory() && fs::exists(e.path() / "model.onnx")) cases.push_back(e.path());
  }
  std::sort(cases.begin(), cases.end());
  struct Count { int pass = 0, fail = 0, expected_fail = 0; };
  std::map<std::string, Count> by_op;
  int unexpected = 0, fixed = 0, skipped = 0;
  ShapeCount shapes;
  for (const fs::path& dir : cases) {
    const std::string name = dir.filename().string();
    if (std::getenv("CONFORMANCE_VERBOSE")) std::fprintf(stderr, "case %s\n", name.c_str());
    auto graph = LoadOnnxGraph((dir / "model.onnx").string());
    std::set<std::string> ops;
    if (graph.ok()) {
      if (!UnsupportedOperators(*graph).empty()) {
        ++skipped;  // uses an operator the runtime does not implement
        continue;
      }
      for (const Node& n : graph->nodes) ops.insert(n.domain.empty() ? n.op_type : n.domain + "::" + n.op_type);
    } else {
      ops.insert("(load)");
    }
    std::string problem = RunCase(dir);
    if (problem.empty()) problem = CheckInferredShapes(dir, shapes);
    const bool listed = expected.count(name) > 0;
    for (const std::string& op : ops) {
      Count& c = by_op[op];
      if (problem.empty()) ++c.pass; else if (listed) ++c.expected_fail; else ++c.fail;
    }
    if (!problem.empty() && !listed) {
      ++unexpected;
      std::printf("FAIL %s: %s\n", name.c_str(), problem.c_str());
    } else if (problem.empty() && listed) {
      ++fixed;
      std::printf("PASSES BUT LISTED AS EXPECTED FAILURE %s (remove it from the list)\n", name.c_str());
    }
  }
  std::printf("\n%-28s %6s %6s %9s\n", "operator", "pass", "fail", "expected");
  int pass = 0, fail = 0, xfail = 0;
  for (const auto& [op, c] : by_op) {
    std::printf("%-28s %6d %6d %9d\n", op.c_str(), c.pass, c.fail, c.expected_fail);
  }
  for (const auto& [op, c] : by_op) { pass += c.pass; fail += c.fail; xfail += c.expected_fail; }
  std::printf("\ncases: %zu, skipped (unimplemented operators): %d, unexpected failures: %d, listed failures still "
              "failing: %zu\n", cases.size(), skipped, unexpected, expected.size() - fixed);
  std::printf("inferred output shapes: %d static, %d partly static, %d unknown\n", shapes.static_shape, shapes.partial,
              shapes.unknown);
  return unexpected == 0 && fixed == 0 ? 0 : 1;
}
