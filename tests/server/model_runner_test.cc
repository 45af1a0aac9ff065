// ModelRunner: requests checked against the model before queueing, the bounded queue (made deterministic by a
// callback that holds the runner's thread), results against the model's own arithmetic, and every accepted
// request answered when the runner goes away.
#include "server/model_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <cmath>
#include <cstring>
#include <thread>
#include <future>

#include "server/cpus.h"
#include "tests/onnx_builder.h"

namespace coreserve {
namespace {

using ::testing::HasSubstr;
using coreserve::testing::TempDir;
using coreserve::testing::TinyMatMulModel;
using coreserve::testing::WriteModel;

// x (batch x 4) filled with `value`.
InferRequest Ones(float value, int64_t batch = 1) {
  runtime::Tensor x = runtime::Tensor::Allocate(runtime::DataType::kFloat32, {batch, 4});
  for (int64_t i = 0; i < x.elements(); ++i) x.data<float>()[i] = value;
  InferRequest r;
  r.inputs = {{"x", x}};
  return r;
}

// The tiny model computes y = x * W with W[k][n] = 0.5 * (2k + n): a row of v gives [6v, 8v].
void ExpectRow(const absl::StatusOr<NamedTensors>& result, float v) {
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), 1u);
  EXPECT_EQ((*result)[0].first, "y");
  EXPECT_EQ((*result)[0].second.data<float>()[0], 6 * v);
  EXPECT_EQ((*result)[0].second.data<float>()[1], 8 * v);
}

// The tiny model's runner on one thread, with `configure` applied to its config.
std::unique_ptr<ModelRunner> Load(const std::function<void(ModelConfig&)>& configure = {}) {
  ModelConfig config;
  config.threads = 1;
  if (configure) configure(config);
  const auto dir = TempDir("runner");
  auto runner = ModelRunner::Load("tiny", WriteModel(TinyMatMulModel(), dir / "1" / "model.onnx"), config);
  EXPECT_TRUE(runner.ok()) << runner.status();
  return runner.ok() ? *std::move(runner) : nullptr;
}

TEST(ModelRunner, BadRequestsAreRefusedBeforeQueueing) {
  auto runner = Load([](ModelConfig& c) { c.max_batch_size = 2; });
  ASSERT_NE(runner, nullptr);
  auto refuse = [&](InferRequest request) {
    std::string message;
    runner->Submit(std::move(request), [&](absl::StatusOr<NamedTensors> r) {  // called before Submit returns
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
      message = std::string(r.status().message());
    });
    return message;
  };
  InferRequest renamed = Ones(1);
  renamed.inputs[0].first = "image";
  EXPECT_THAT(refuse(renamed), HasSubstr("model 'tiny' has no input 'image' (its inputs: x)"));
  EXPECT_THAT(refuse(InferRequest{}), HasSubstr("missing input 'x'"));
  InferRequest twice = Ones(1);
  twice.inputs.push_back(twice.inputs[0]);
  EXPECT_THAT(refuse(twice), HasSubstr("input 'x' is given twice"));
  InferRequest unknown_output = Ones(1);
  unknown_output.outputs = {"z"};
  EXPECT_THAT(refuse(unknown_output), HasSubstr("no output 'z' (its outputs: y)"));
  EXPECT_THAT(refuse(Ones(1, 3)), HasSubstr("batch size 3 exceeds the model's max_batch_size 2"));
}

TEST(ModelRunner, FullQueueRefusesAtOnceAndEveryAcceptedRequestIsAnswered) {
  auto runner = Load([](ModelConfig& c) { c.max_queue_size = 1; });
  ASSERT_NE(runner, nullptr);
  std::promise<void> a_running, release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<absl::StatusOr<NamedTensors>> b_result;
  // A holds the runner's thread inside its callback until released.
  runner->Submit(Ones(1), [&](absl::StatusOr<NamedTensors> r) {
    ExpectRow(r, 1);
    a_running.set_value();
    released.wait();
  });
  a_running.get_future().wait();
  // B waits in the queue; C finds it full and is refused on this thread, at once.
  runner->Submit(Ones(2), [&](absl::StatusOr<NamedTensors> r) { b_result.set_value(std::move(r)); });
  absl::Status c = absl::OkStatus();
  runner->Submit(Ones(3), [&](absl::StatusOr<NamedTensors> r) { c = r.status(); });
  EXPECT_EQ(c.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(c.message()), HasSubstr("queue full (1 requests waiting)"));
  release.set_value();
  ExpectRow(b_result.get_future().get(), 2);
}

TEST(ModelRunner, DestructionAnswersQueuedRequests) {
  auto runner = Load([](ModelConfig& c) { c.threads = 2; });
  ASSERT_NE(runner, nullptr);
  std::vector<absl::StatusOr<NamedTensors>> results(8, absl::UnknownError("not answered"));
  for (int i = 0; i < 8; ++i) {
    runner->Submit(Ones(static_cast<float>(i)), [&results, i](absl::StatusOr<NamedTensors> r) { results[i] = std::move(r); });
  }
  runner.reset();
  for (int i = 0; i < 8; ++i) ExpectRow(results[i], static_cast<float>(i));
}

// Holds the runner's thread inside a first request's callback, so that what is submitted meanwhile queues up
// deterministically; Release() lets it go. The callback owns what it waits on (the held thread may still be
// leaving it when the Hold is gone, e.g. when another instance answered the test's last request).
struct Hold {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  explicit Hold(ModelRunner& runner, InferRequest request = Ones(0)) {
    auto running = std::make_shared<std::promise<void>>();
    std::future<void> started = running->get_future();
    runner.Submit(std::move(request), [running, released = released](absl::StatusOr<NamedTensors>) {
      running->set_value();
      released.wait();
    });
    started.wait();
  }
  void Release() { release.set_value(); }
};

TEST(ModelRunner, DynamicBatchingRunsQueuedRequestsAsOneAndSplitsTheRowsBack) {
  auto runner = Load([](ModelConfig& c) { c.max_batch_size = 8; c.dynamic_batching = true; });
  ASSERT_NE(runner, nullptr);
  Hold hold(*runner);
  EXPECT_EQ(runner->in_flight(), 1);  // the held request, inside its callback
  // Batch sizes 1, 2, 1, 3 (= 7 rows), each row of request i filled with a value of its own.
  const std::vector<int64_t> sizes = {1, 2, 1, 3};
  std::vector<std::promise<absl::StatusOr<NamedTensors>>> results(sizes.size());
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    InferRequest r = Ones(0, sizes[i]);
    for (int64_t row = 0; row < sizes[i]; ++row) {
      for (int k = 0; k < 4; ++k) r.inputs[0].second.data<float>()[row * 4 + k] = static_cast<float>(10 * i + row);
    }
    runner->Submit(std::move(r), [&results, i](absl::StatusOr<NamedTensors> out) { results[i].set_value(std::move(out)); });
  }
  hold.Release();
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    absl::StatusOr<NamedTensors> out = results[i].get_future().get();
    ASSERT_TRUE(out.ok()) << out.status();
    const runtime::Tensor& y = (*out)[0].second;
    ASSERT_EQ(y.shape(), (runtime::Shape{sizes[i], 2}));
    for (int64_t row = 0; row < sizes[i]; ++row) {
      const float v = static_cast<float>(10 * i + row);
      EXPECT_EQ(y.data<float>()[row * 2], 6 * v);
      EXPECT_EQ(y.data<float>()[row * 2 + 1], 8 * v);
    }
  }
  const RunnerStats stats = runner->stats();
  EXPECT_EQ(stats.inference_count, 5);
  EXPECT_EQ(stats.execution_count, 2);  // the held request, then the four as one batch
  EXPECT_EQ(stats.batches.at(7).count, 1);  // of 1 + 2 + 1 + 3 rows
  EXPECT_EQ(stats.batch_rows.count, 2);
  EXPECT_EQ(stats.success.count, 5);
  EXPECT_EQ(stats.queue.count, 5);
}

// One request whose input makes the model fail (a token id past the embedding table) batched with good ones:
// only it gets the error; the others are run again on their own and get their rows.
TEST(ModelRunner, AFailingRequestDoesNotFailTheRequestsBatchedWithIt) {
  onnx::ModelProto m = TinyMatMulModel();
  auto* g = m.mutable_graph();
  g->clear_node();
  g->clear_initializer();
  g->clear_input();
  g->clear_output();
  coreserve::testing::AddFloatInitializer(g, "table", {4, 2}, {0, 1, 10, 11, 20, 21, 30, 31});
  coreserve::testing::AddTensorValue(g->add_input(), "ids", onnx::TensorProto::INT64, {"batch", "1"});
  coreserve::testing::AddOnnxNode(g, "Gather", {"table", "ids"}, "y");
  coreserve::testing::AddTensorValue(g->add_output(), "y", onnx::TensorProto::FLOAT, {"batch", "1", "2"});
  ModelConfig config;
  config.threads = 1;
  config.max_batch_size = 8;
  config.dynamic_batching = true;
  const auto dir = TempDir("gather");
  auto runner = ModelRunner::Load("gather", WriteModel(m, dir / "1" / "model.onnx"), config);
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto ids = [](int64_t id) {
    InferRequest r;
    runtime::Tensor t = runtime::Tensor::Allocate(runtime::DataType::kInt64, {1, 1});
    t.data<int64_t>()[0] = id;
    r.inputs = {{"ids", t}};
    return r;
  };
  Hold hold(**runner, ids(0));
  const std::vector<int64_t> requested = {1, 7, 3, 2};  // 7 is past the table's 4 rows
  std::vector<std::promise<absl::StatusOr<NamedTensors>>> results(requested.size());
  for (std::size_t i = 0; i < requested.size(); ++i) {
    (*runner)->Submit(ids(requested[i]),
                      [&results, i](absl::StatusOr<NamedTensors> out) { results[i].set_value(std::move(out)); });
  }
  hold.Release();
  for (std::size_t i = 0; i < requested.size(); ++i) {
    absl::StatusOr<NamedTensors> out = results[i].get_future().get();
    if (requested[i] == 7) {
      ASSERT_FALSE(out.ok());
      EXPECT_THAT(std::string(out.status().message()), HasSubstr("index 7 is out of range"));
      continue;
    }
    ASSERT_TRUE(out.ok()) << "request " << i << ": " << out.status();
    const runtime::Tensor& y = (*out)[0].second;
    ASSERT_EQ(y.shape(), (runtime::Shape{1, 1, 2}));
    EXPECT_EQ(y.data<float>()[0], 10.0f * requested[i]);
    EXPECT_EQ(y.data<float>()[1], 10.0f * requested[i] + 1);
  }
  const RunnerStats stats = (*runner)->stats();
  EXPECT_EQ(stats.success.count, 4);  // the held request and the three good ones
  // A request counts as in flight until its callback returns, which is after the last future above is set.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((*runner)->in_flight() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();  // waiting for an event, not measuring time
  }
  EXPECT_EQ((*runner)->in_flight(), 0);
}

// A transformer's request: `rows` x `length` token ids (seeded), an attention mask with row r's last r positions
// masked (the client's own padding), and token types when the model takes them.
InferRequest TextRequest(const ModelRunner& runner, int64_t rows, int64_t length, uint32_t seed) {
  InferRequest r;
  uint32_t state = seed * 2654435761u + 1;
  for (const runtime::TensorInfo& info : runner.session().inputs()) {
    runtime::Tensor t = runtime::Tensor::Allocate(runtime::DataType::kInt64, {rows, length});
    for (int64_t row = 0; row < rows; ++row) {
      for (int64_t p = 0; p < length; ++p) {
        int64_t& v = t.data<int64_t>()[row * length + p];
        state = state * 1664525u + 1013904223u;
        if (info.name == "input_ids") v = state % 1000;
        if (info.name == "attention_mask") v = p < std::max<int64_t>(1, length - row);
        if (info.name == "token_type_ids") v = p >= length / 2;
      }
    }
    r.inputs.emplace_back(info.name, std::move(t));
  }
  return r;
}

// Requests of different sequence lengths queued behind a held one run as one batch padded to the longest, and
// each gets (within rounding) what it gets alone, cut back to its own length where an output follows the
// sequence (GPT-2's logits); with pad_sequences off, only equal lengths share a batch.
TEST(ModelRunner, SequencesOfDifferentLengthsBatchPaddedAndMatchTheirUnbatchedOutputs) {
  struct Shape2 { int64_t rows, length; };
  const std::vector<Shape2> requests = {{1, 5}, {2, 9}, {1, 3}, {1, 9}};
  for (const char* name : {"bert_ts_opset17", "gpt2_ts_opset17"}) {
    for (bool pad : {true, false}) {
      SCOPED_TRACE(std::string(name) + (pad ? " padded" : " unpadded"));
      ModelConfig config;
      config.threads = 1;
      config.max_batch_size = 8;
      config.dynamic_batching = true;
      config.pad_sequences = pad;
      auto loaded = ModelRunner::Load(name, std::string(CORESERVE_FIXTURES_DIR) + "/" + name + ".onnx", config);
      ASSERT_TRUE(loaded.ok()) << loaded.status();
      ModelRunner& runner = **loaded;
      Hold hold(runner, TextRequest(runner, 1, 4, 99));
      std::vector<std::promise<absl::StatusOr<NamedTensors>>> results(requests.size());
      for (std::size_t i = 0; i < requests.size(); ++i) {
        runner.Submit(TextRequest(runner, requests[i].rows, requests[i].length, static_cast<uint32_t>(i)),
                      [&results, i](absl::StatusOr<NamedTensors> out) { results[i].set_value(std::move(out)); });
      }
      hold.Release();
      runtime::ThreadPool pool(1);
      for (std::size_t i = 0; i < requests.size(); ++i) {
        absl::StatusOr<NamedTensors> got = results[i].get_future().get();
        ASSERT_TRUE(got.ok()) << got.status();
        std::vector<runtime::Tensor> alone_inputs;
        for (auto& [input, tensor] : TextRequest(runner, requests[i].rows, requests[i].length, static_cast<uint32_t>(i)).inputs) {
          alone_inputs.push_back(tensor);
        }
        auto alone = runner.session().Run(alone_inputs, &pool);
        ASSERT_TRUE(alone.ok()) << alone.status();
        ASSERT_EQ(got->size(), alone->size());
        for (std::size_t o = 0; o < alone->size(); ++o) {
          const runtime::Tensor& a = (*alone)[o];
          const runtime::Tensor& b = (*got)[o].second;
          ASSERT_EQ(a.shape(), b.shape()) << "request " << i;
          for (int64_t e = 0; e < a.elements(); ++e) {
            const float x = a.data<float>()[e], y = b.data<float>()[e];
            ASSERT_LE(std::fabs(x - y), 1e-5f * std::max(1.0f, std::fabs(x))) << "request " << i << " element " << e;
          }
        }
      }
      const RunnerStats stats = runner.stats();
      if (pad) {
        EXPECT_EQ(stats.execution_count, 2);  // the held request, then the four as one batch of 5 rows
        EXPECT_EQ(stats.batches.at(5).count, 1);
      } else {
        EXPECT_EQ(stats.execution_count, 4);  // held; length 5; the two of length 9 (3 rows); length 3
        EXPECT_EQ(stats.batches.at(3).count, 1);
      }
    }
  }
}

// Warm-up runs before the runner exists: the first request of its shape finds its memory plan made; a warm-up
// that does not fit the model fails the load with the run and input named.
TEST(ModelRunner, WarmupMakesThePlanOrFailsTheLoad) {
  auto cold = Load();
  ASSERT_NE(cold, nullptr);
  EXPECT_EQ(cold->session().MemoryPlanFor({{3, 4}}).status().code(), absl::StatusCode::kNotFound);
  auto warm = Load([](ModelConfig& c) { c.warmup = {WarmupRun{{{"x", {3, 4}}}, 2}}; });
  ASSERT_NE(warm, nullptr);
  EXPECT_TRUE(warm->session().MemoryPlanFor({{3, 4}}).ok());
  EXPECT_EQ(warm->stats().inference_count, 0);  // warm-up is not traffic
  auto fails = [](std::vector<WarmupRun> runs) {
    ModelConfig config;
    config.threads = 1;
    config.warmup = std::move(runs);
    const auto dir = TempDir("runner-warmup");
    auto runner = ModelRunner::Load("tiny", WriteModel(TinyMatMulModel(), dir / "1" / "model.onnx"), config);
    EXPECT_FALSE(runner.ok());
    return std::string(runner.status().message());
  };
  EXPECT_THAT(fails({WarmupRun{{{"image", {1, 4}}}, 1}}),
              HasSubstr("model 'tiny': warmup[0]: the model has no input 'image' (its inputs: x)"));
  EXPECT_THAT(fails({WarmupRun{{{"x", {1, 4}}}, 1}, WarmupRun{{{"x", {2, 5}}}, 1}}),
              HasSubstr("warmup[1]: shape [2,5] does not fit input 'x' [-1,4]"));
  EXPECT_THAT(fails({WarmupRun{{}, 1}}), HasSubstr("warmup[0]: input 'x' is [-1,4]; give its shape under shapes"));
}

// Overrides narrow what clients see and send: the declared shapes change, a request that the model would take but
// the override does not is refused naming the input, and an override that does not fit the model fails the load.
TEST(ModelRunner, InputAndOutputOverrides) {
  auto runner = Load([](ModelConfig& c) {
    c.inputs = {TensorOverride{"x", {2, 4}}};
    c.outputs = {TensorOverride{"y", {2, 2}}};
  });
  ASSERT_NE(runner, nullptr);
  EXPECT_EQ(runner->inputs()[0].shape, (runtime::Shape{2, 4}));
  EXPECT_EQ(runner->outputs()[0].shape, (runtime::Shape{2, 2}));
  EXPECT_EQ(runner->session().inputs()[0].shape, (runtime::Shape{-1, 4}));  // the model's own, unchanged
  std::promise<absl::StatusOr<NamedTensors>> refused, accepted;
  runner->Submit(Ones(1, 1), [&](absl::StatusOr<NamedTensors> r) { refused.set_value(std::move(r)); });
  runner->Submit(Ones(1, 2), [&](absl::StatusOr<NamedTensors> r) { accepted.set_value(std::move(r)); });
  const auto bad = refused.get_future().get();
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("input 'x': shape [1,4] does not fit [2,4]"));
  ExpectRow(accepted.get_future().get(), 1);
  auto fails = [](std::vector<TensorOverride> inputs, std::vector<TensorOverride> outputs) {
    ModelConfig config;
    config.threads = 1;
    config.inputs = std::move(inputs);
    config.outputs = std::move(outputs);
    const auto dir = TempDir("runner-overrides");
    auto r = ModelRunner::Load("tiny", WriteModel(TinyMatMulModel(), dir / "1" / "model.onnx"), config);
    EXPECT_FALSE(r.ok());
    return std::string(r.status().message());
  };
  EXPECT_THAT(fails({{"image", {1, 4}}}, {}), HasSubstr("model 'tiny': inputs.image: the model has no input 'image' (its inputs: x)"));
  EXPECT_THAT(fails({{"x", {-1, 5}}}, {}), HasSubstr("inputs.x: dims [-1,5] do not fit the model's [-1,4] (-1 = any)"));
  EXPECT_THAT(fails({}, {{"y", {-1}}}), HasSubstr("outputs.y: dims [-1] do not fit the model's [-1,2]"));
}

// groups: [1, 1] makes two instances pinned to one CPU each, fed from one queue: while one instance is held
// inside a callback, the other still answers; a layout larger than the CPUs fails the load naming it.
TEST(ModelRunner, CoreGroupsAreInstancesThatServeInParallel) {
  const std::vector<int> cpus = UsableCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs";
  ModelConfig config;
  config.groups = {1, 1};
  const auto dir = TempDir("runner-groups");
  const std::string path = WriteModel(TinyMatMulModel(), dir / "1" / "model.onnx");
  auto loaded = ModelRunner::Load("tiny", path, config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ModelRunner& runner = **loaded;
  EXPECT_EQ(runner.threads(), 2);
  const auto before = runner.instance_stats();
  ASSERT_EQ(before.size(), 2u);
  EXPECT_EQ(before[0].cpus, (std::vector<int>{cpus[0]}));
  EXPECT_EQ(before[1].cpus, (std::vector<int>{cpus[1]}));
  Hold hold(runner);  // one instance is now inside the held request's callback
  const auto held = runner.instance_stats();
  EXPECT_EQ(held[0].in_flight + held[1].in_flight, 1);
  std::promise<absl::StatusOr<NamedTensors>> second;
  runner.Submit(Ones(2), [&](absl::StatusOr<NamedTensors> r) { second.set_value(std::move(r)); });
  ExpectRow(second.get_future().get(), 2);  // answered by the other instance while the first is held
  hold.Release();
  const auto after = runner.instance_stats();
  EXPECT_EQ(after[0].executions + after[1].executions, 2);
  EXPECT_EQ(after[0].executions, 1);
  EXPECT_GT(after[0].busy_seconds + after[1].busy_seconds, 0.0);

  config.groups = {static_cast<int64_t>(cpus.size()), 1};
  auto too_big = ModelRunner::Load("tiny", path, config);
  ASSERT_FALSE(too_big.ok());
  EXPECT_THAT(std::string(too_big.status().message()),
              HasSubstr(absl::StrCat("model 'tiny': groups [", cpus.size(), ", 1] need ", cpus.size() + 1, " cores")));
}

// A pipeline of two one-core stages: its outputs are bit for bit those of the whole model, and it keeps both
// stages busy at once — while the first request is still in the last stage (held inside its callback), the
// second goes through the first stage and waits in front of the last one. No timing: the test waits for the
// stage counters to say so.
TEST(ModelRunner, PipelineStagesStreamRequestsAndMatchTheWholeModel) {
  const std::vector<int> cpus = UsableCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs";
  ModelConfig config;
  config.pipeline.stages = 2;
  auto loaded = ModelRunner::Load("bert", std::string(CORESERVE_FIXTURES_DIR) + "/bert_ts_opset17.onnx", config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ModelRunner& runner = **loaded;
  auto stats = runner.instance_stats();
  ASSERT_EQ(stats.size(), 1u);
  ASSERT_EQ(stats[0].stages.size(), 2u);
  EXPECT_EQ(stats[0].stages[0].cpus, (std::vector<int>{cpus[0]}));
  EXPECT_EQ(stats[0].stages[1].cpus, (std::vector<int>{cpus[1]}));

  Hold hold(runner, TextRequest(runner, 1, 7, 1));  // the last stage's thread is now inside this callback
  std::promise<absl::StatusOr<NamedTensors>> second;
  runner.Submit(TextRequest(runner, 2, 9, 2), [&](absl::StatusOr<NamedTensors> r) { second.set_value(std::move(r)); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (runner.instance_stats()[0].stages[1].queue_depth != 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();  // waiting for an event, not measuring time
  }
  stats = runner.instance_stats();
  EXPECT_EQ(stats[0].stages[0].runs, 2);  // both requests went through the first stage...
  EXPECT_EQ(stats[0].stages[1].runs, 1);  // ...while the first is still in the last one
  EXPECT_EQ(stats[0].stages[1].queue_depth, 1);
  EXPECT_EQ(stats[0].in_flight, 2);
  hold.Release();
  absl::StatusOr<NamedTensors> got = second.get_future().get();
  ASSERT_TRUE(got.ok()) << got.status();
  std::vector<runtime::Tensor> alone_inputs;
  for (auto& [name, t] : TextRequest(runner, 2, 9, 2).inputs) alone_inputs.push_back(t);
  runtime::ThreadPool pool(1);
  auto want = runner.session().Run(alone_inputs, &pool);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_EQ((*got)[0].second.shape(), (*want)[0].shape());
  EXPECT_EQ(std::memcmp((*got)[0].second.raw(), (*want)[0].raw(), (*want)[0].bytes()), 0);

  config.pipeline.stages = static_cast<int64_t>(cpus.size()) + 1;
  auto too_big = ModelRunner::Load("bert", std::string(CORESERVE_FIXTURES_DIR) + "/bert_ts_opset17.onnx", config);
  ASSERT_FALSE(too_big.ok());
  EXPECT_THAT(std::string(too_big.status().message()), HasSubstr("cores, but the server may use"));
}

TEST(ModelRunner, PriorityOrderTimeoutsAndCancelledClients) {
  auto runner = Load([](ModelConfig& c) { c.priority_levels = 2; });
  ASSERT_NE(runner, nullptr);
  Hold hold(*runner);
  std::vector<std::string> order;  // written by the runner's thread only
  std::promise<void> all_done;
  int remaining = 4;
  auto record = [&](std::string what) {
    return [&, what](absl::StatusOr<NamedTensors> r) {
      order.push_back(what + ":" + (r.ok() ? "ok" : std::string(absl::StatusCodeToString(r.status().code()))));
      if (--remaining == 0) all_done.set_value();
    };
  };
  InferRequest low = Ones(1);
  low.priority = 2;
  runner->Submit(std::move(low), record("low"));
  InferRequest high = Ones(1);
  high.priority = 1;
  runner->Submit(std::move(high), record("high"));
  InferRequest gone = Ones(1);
  gone.priority = 1;
  gone.cancelled = [] { return true; };
  runner->Submit(std::move(gone), record("gone"));
  InferRequest hurried = Ones(1);
  hurried.priority = 1;
  hurried.timeout_us = 1;
  runner->Submit(std::move(hurried), record("hurried"));
  const auto submitted = BatchClock::now();  // after its arrival was stamped
  while (BatchClock::now() < submitted + std::chrono::microseconds(2)) {
  }  // its timeout has certainly passed before the runner looks at the queue again
  hold.Release();
  all_done.get_future().wait();
  EXPECT_THAT(order, ::testing::ElementsAre("hurried:UNAVAILABLE", "high:ok", "gone:CANCELLED", "low:ok"));
  InferRequest bad = Ones(1);
  bad.priority = 3;
  absl::Status status;
  runner->Submit(std::move(bad), [&](absl::StatusOr<NamedTensors> r) { status = r.status(); });
  EXPECT_THAT(std::string(status.message()), HasSubstr("priority 3 is not a level of model 'tiny' (1 to 2)"));
  const RunnerStats stats = runner->stats();
  EXPECT_EQ(stats.failures, (std::map<std::string, int64_t>{{"cancelled", 1}, {"invalid_argument", 1}, {"timeout", 1}}));
  EXPECT_EQ(stats.fail.count, 3);
  EXPECT_EQ(stats.success.count, 3);  // the held one, high and low
}

// A request whose first input is a scalar cannot batch: it runs alone, as one row, also with batching on.
TEST(ModelRunner, ScalarInputRunsAloneAsOneRow) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("scale");
  // Scalars: a shape with no dimensions (the checker wants the field present).
  coreserve::testing::AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {});
  g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  coreserve::testing::AddFloatInitializer(g, "three", {}, {3.0f});
  coreserve::testing::AddOnnxNode(g, "Mul", {"x", "three"}, "y");
  coreserve::testing::AddTensorValue(g->add_output(), "y", onnx::TensorProto::FLOAT, {});
  g->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  const auto dir = TempDir("runner-scalar");
  ModelConfig config;
  config.threads = 1;
  config.max_batch_size = 4;
  config.dynamic_batching = true;
  auto runner = ModelRunner::Load("scale", WriteModel(m, dir / "1" / "model.onnx"), config);
  ASSERT_TRUE(runner.ok()) << runner.status();
  runtime::Tensor x = runtime::Tensor::Allocate(runtime::DataType::kFloat32, {});
  x.data<float>()[0] = 2.0f;
  std::promise<absl::StatusOr<NamedTensors>> result;
  InferRequest request;
  request.inputs = {{"x", x}};
  (*runner)->Submit(std::move(request), [&](absl::StatusOr<NamedTensors> r) { result.set_value(std::move(r)); });
  absl::StatusOr<NamedTensors> y = result.get_future().get();
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ((*y)[0].second.data<float>()[0], 6.0f);
  const RunnerStats stats = (*runner)->stats();
  EXPECT_EQ(stats.batches.size(), 1u);
  EXPECT_EQ(stats.batches.count(1), 1u);
}

}  // namespace
}  // namespace coreserve
