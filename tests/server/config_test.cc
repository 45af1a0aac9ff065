#include "server/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/temp_dir.h"

namespace coreserve {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ServerConfig> Parse(const std::string& yaml) { return ParseServerConfig(yaml, "test.yaml", "/etc/cs"); }

std::string Error(const std::string& yaml) {
  auto c = Parse(yaml);
  EXPECT_FALSE(c.ok()) << yaml;
  return std::string(c.status().message());
}

TEST(ServerConfig, EmptyFileMeansDefaults) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->http.port, 8000);
  EXPECT_EQ(c->grpc.port, 8001);
  EXPECT_EQ(c->metrics.port, 8002);
  EXPECT_EQ(c->http.address, "127.0.0.1");
  EXPECT_TRUE(c->model_repositories.empty());
  EXPECT_EQ(c->log_level, LogLevel::kInfo);
}

TEST(ServerConfig, ReadsEveryKey) {
  auto c = Parse(R"(
http: {address: 0.0.0.0, port: 9000}
grpc: {port: 9001}
metrics: {address: "::1", port: 0}
model_repository: [models, /abs/models]
log_level: debug
shutdown_grace_seconds: 2.5
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->http.address, "0.0.0.0");
  EXPECT_EQ(c->http.port, 9000);
  EXPECT_EQ(c->grpc.address, "127.0.0.1");
  EXPECT_EQ(c->grpc.port, 9001);
  EXPECT_EQ(c->metrics.address, "::1");
  EXPECT_EQ(c->metrics.port, 0);
  // Relative paths resolve against the config file's folder.
  EXPECT_EQ(c->model_repositories, (std::vector<std::string>{"/etc/cs/models", "/abs/models"}));
  EXPECT_EQ(c->log_level, LogLevel::kDebug);
  EXPECT_DOUBLE_EQ(c->shutdown_grace_seconds, 2.5);
}

TEST(ServerConfig, SingleRepositoryPath) {
  auto c = Parse("model_repository: ../models\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_repositories, (std::vector<std::string>{"/etc/models"}));
}

TEST(ServerConfig, UnknownKeyNamesFileKeyAndAllowed) {
  const std::string e = Error("htp: {port: 1}\n");
  EXPECT_THAT(e, HasSubstr("test.yaml"));
  EXPECT_THAT(e, HasSubstr("'htp'"));
  EXPECT_THAT(e, HasSubstr("allowed: http, grpc, metrics"));
  EXPECT_THAT(Error("http: {prot: 1}\n"), HasSubstr("unknown key 'http.prot' (allowed: address, port, tls)"));
}

TEST(ServerConfig, BadValuesNameKeyAndAllowedValues) {
  EXPECT_THAT(Error("http: {port: abc}\n"),
              HasSubstr("test.yaml: http.port: expected an integer from 0 to 65535, got 'abc'"));
  EXPECT_THAT(Error("grpc: {port: 70000}\n"), HasSubstr("grpc.port: expected an integer from 0 to 65535"));
  EXPECT_THAT(Error("grpc: {port: -1}\n"), HasSubstr("grpc.port"));
  EXPECT_THAT(Error("http: 8000\n"), HasSubstr("http: expected a mapping"));
  EXPECT_THAT(Error("log_level: loud\n"), HasSubstr("log_level: expected one of debug, info, warning, error"));
  EXPECT_THAT(Error("shutdown_grace_seconds: -3\n"), HasSubstr("shutdown_grace_seconds"));
  EXPECT_THAT(Error("model_repository: {a: b}\n"), HasSubstr("model_repository: expected a path or a list"));
  EXPECT_THAT(Error("- a\n- b\n"), HasSubstr("expected a mapping of keys at the top level"));
}

TEST(ServerConfig, SyntaxErrorNamesFileAndLine) {
  const std::string e = Error("http:\n  port: [1, 2\n");
  EXPECT_THAT(e, HasSubstr("test.yaml:"));
  EXPECT_THAT(e, HasSubstr("YAML syntax error"));
}

TEST(ServerConfig, ListenersNeedDistinctPorts) {
  EXPECT_THAT(Error("http: {port: 9000}\ngrpc: {port: 9000}\n"), HasSubstr("http.port and grpc.port are both 9000"));
  // Port 0 (any free port) may repeat.
  EXPECT_TRUE(Parse("http: {port: 0}\ngrpc: {port: 0}\nmetrics: {port: 0}\n").ok());
}

TEST(ServerConfig, LoadMissingFile) {
  auto c = LoadServerConfig("/nonexistent/coreserve.yaml");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("/nonexistent/coreserve.yaml"));
}

TEST(ServerConfig, LoadResolvesAgainstTheFilesFolder) {
  const auto dir = coreserve::testing::TempDir("config-load");
  std::ofstream(dir / "server.yaml") << "model_repository: repo\n";
  auto c = LoadServerConfig((dir / "server.yaml").string());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_repositories, (std::vector<std::string>{(dir / "repo").string()}));
}

TEST(ModelConfig, ServerDefaultsThenTheModelsOwnFile) {
  auto c = Parse("model_defaults: {precision: bf16, threads: 2}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_defaults.precision, kernels::GemmPrecision::kBf16);
  EXPECT_EQ(c->model_defaults.threads, 2);
  EXPECT_EQ(c->model_defaults.max_queue_size, 64);
  const auto dir = coreserve::testing::TempDir("model-config");
  // No config.yaml: the server's defaults as they are.
  auto none = LoadModelConfig(dir.string(), c->model_defaults);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->precision, kernels::GemmPrecision::kBf16);
  std::ofstream(dir / "config.yaml") << "precision: int8\nmax_batch_size: 8\nmax_queue_size: 0\n";
  auto own = LoadModelConfig(dir.string(), c->model_defaults);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->precision, kernels::GemmPrecision::kInt8);
  EXPECT_EQ(own->threads, 2);  // not in the file: the server's default
  EXPECT_EQ(own->max_batch_size, 8);
  EXPECT_EQ(own->max_queue_size, 0);
}

TEST(ServerConfig, Tls) {
  auto c = Parse(R"(
http:
  tls: {cert_file: tls/server.crt, key_file: /keys/server.key}
grpc:
  port: 9001
  tls: {cert_file: a.crt, key_file: a.key, client_ca_file: ca.crt}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->http.tls.enabled());
  EXPECT_EQ(c->http.tls.cert_file, "/etc/cs/tls/server.crt");
  EXPECT_EQ(c->http.tls.key_file, "/keys/server.key");
  EXPECT_TRUE(c->http.tls.client_ca_file.empty());
  EXPECT_EQ(c->http.port, 8000);
  EXPECT_EQ(c->grpc.tls.client_ca_file, "/etc/cs/ca.crt");
  EXPECT_FALSE(c->metrics.tls.enabled());
  EXPECT_THAT(Error("http: {tls: {cert_file: a.crt}}\n"), HasSubstr("test.yaml: http.tls: needs both cert_file and key_file"));
  EXPECT_THAT(Error("grpc: {tls: {key_file: a.key}}\n"), HasSubstr("grpc.tls: needs both"));
  EXPECT_THAT(Error("metrics: {tls: {cert: a.crt}}\n"), HasSubstr("unknown key 'metrics.tls.cert' (allowed: cert_file, key_file, client_ca_file)"));
  EXPECT_THAT(Error("http: {tls: on}\n"), HasSubstr("http.tls: expected a mapping with cert_file and key_file"));
}

TEST(ServerConfig, RequestLimit) {
  EXPECT_EQ(Parse("")->max_request_bytes, int64_t{512} << 20);
  EXPECT_EQ(Parse("max_request_bytes: 4096\n")->max_request_bytes, 4096);
  EXPECT_THAT(Error("max_request_bytes: 10\n"), HasSubstr("max_request_bytes: expected an integer from 1024 to"));
}

TEST(ServerConfig, ModelControl) {
  EXPECT_EQ(Parse("")->model_control, ModelControlMode::kNone);
  EXPECT_TRUE(Parse("")->model_control_token_file.empty());
  auto c = Parse("model_control: poll\nmodel_poll_seconds: 2.5\nmodel_control_token_file: secrets/token\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_control, ModelControlMode::kPoll);
  EXPECT_EQ(c->model_poll_seconds, 2.5);
  EXPECT_EQ(c->model_control_token_file, "/etc/cs/secrets/token");
  EXPECT_EQ(Parse("model_control: explicit\nmodel_control_token_file: /t\n")->model_control,
            ModelControlMode::kExplicit);
  // The repository API is never on without a token.
  EXPECT_THAT(Error("model_control: explicit\n"),
              HasSubstr("test.yaml: model_control: explicit turns on the repository API (load, unload), which needs "
                        "model_control_token_file"));
  EXPECT_THAT(Error("model_control: poll\n"), HasSubstr("model_control: poll turns on the repository API"));
  EXPECT_THAT(Error("model_control: auto\n"),
              HasSubstr("test.yaml: model_control: expected none, explicit or poll, got 'auto'"));
  EXPECT_THAT(Error("model_poll_seconds: 0\n"), HasSubstr("model_poll_seconds: expected a number of seconds"));
}

TEST(ModelConfig, DynamicBatching) {
  auto c = Parse(R"(
model_defaults:
  max_batch_size: 16
  dynamic_batching:
    preferred_batch_sizes: [4, 8]
    max_queue_delay_us: 500
    default_timeout_us: 100000
    priority_levels: 3
    default_priority_level: 2
)");
  ASSERT_TRUE(c.ok()) << c.status();
  const ModelConfig& m = c->model_defaults;
  EXPECT_TRUE(m.dynamic_batching);
  EXPECT_EQ(m.preferred_batch_sizes, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(m.max_queue_delay_us, 500);
  EXPECT_EQ(m.default_timeout_us, 100000);
  EXPECT_EQ(m.priority_levels, 3);
  EXPECT_EQ(m.default_priority_level, 2);
  auto empty = Parse("model_defaults: {max_batch_size: 4, dynamic_batching: {}}\n");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->model_defaults.dynamic_batching);
  EXPECT_FALSE(Parse("model_defaults: {}\n")->model_defaults.dynamic_batching);
  EXPECT_THAT(Error("model_defaults: {dynamic_batching: {}}\n"),
              HasSubstr("model_defaults.dynamic_batching: needs max_batch_size > 0"));
  EXPECT_THAT(Error("model_defaults: {max_batch_size: 4, dynamic_batching: {preferred_batch_sizes: [2, 6]}}\n"),
              HasSubstr("model_defaults.dynamic_batching.preferred_batch_sizes: 6 is larger than max_batch_size 4"));
  EXPECT_THAT(Error("model_defaults: {max_batch_size: 4, dynamic_batching: {preferred_batch_sizes: [0]}}\n"),
              HasSubstr("preferred_batch_sizes[0]: expected an integer from 1 to"));
  EXPECT_THAT(Error("model_defaults: {max_batch_size: 4, dynamic_batching: {priority_levels: 2, "
                    "default_priority_level: 3}}\n"),
              HasSubstr("default_priority_level: expected 0 to priority_levels (2), got 3"));
  EXPECT_THAT(Error("model_defaults: {max_batch_size: 4, dynamic_batching: {delay: 1}}\n"),
              HasSubstr("unknown key 'model_defaults.dynamic_batching.delay'"));
}

TEST(ModelConfig, WarmupAndSequencePadding) {
  auto c = Parse(R"(
model_defaults:
  max_batch_size: 4
  dynamic_batching: {pad_sequences: false}
  warmup:
    - shapes: {input_ids: [1, 128], attention_mask: [1, 128]}
      count: 3
    - shapes: {input_ids: [4, 16]}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  const ModelConfig& m = c->model_defaults;
  EXPECT_FALSE(m.pad_sequences);
  EXPECT_TRUE(Parse("")->model_defaults.pad_sequences);
  EXPECT_FALSE(Parse("")->model_defaults.share_cores);
  EXPECT_TRUE(Parse("model_defaults: {share_cores: true}\n")->model_defaults.share_cores);
  EXPECT_THAT(Error("model_defaults: {share_cores: 2}\n"), HasSubstr("model_defaults.share_cores: expected true or false"));
  ASSERT_EQ(m.warmup.size(), 2u);
  EXPECT_EQ(m.warmup[0].count, 3);
  EXPECT_EQ(m.warmup[0].shapes[1], (std::pair<std::string, std::vector<int64_t>>{"attention_mask", {1, 128}}));
  EXPECT_EQ(m.warmup[1].count, 1);
  EXPECT_THAT(Error("model_defaults: {max_batch_size: 4, dynamic_batching: {pad_sequences: maybe}}\n"),
              HasSubstr("model_defaults.dynamic_batching.pad_sequences: expected true or false, got 'maybe'"));
  EXPECT_THAT(Error("model_defaults: {warmup: {count: 2}}\n"), HasSubstr("model_defaults.warmup: expected a list of runs"));
  EXPECT_THAT(Error("model_defaults: {warmup: [{count: 0}]}\n"),
              HasSubstr("model_defaults.warmup[0].count: expected an integer from 1 to 1000, got '0'"));
  EXPECT_THAT(Error("model_defaults: {warmup: [{shapes: {x: [1, -2]}}]}\n"),
              HasSubstr("model_defaults.warmup[0].shapes.x[1]: expected an integer from 0 to"));
  EXPECT_THAT(Error("model_defaults: {warmup: [{shape: {x: [1]}}]}\n"),
              HasSubstr("unknown key 'model_defaults.warmup[0].shape' (allowed: shapes, count)"));
}

TEST(ModelConfig, VersionPolicy) {
  using Kind = VersionPolicy::Kind;
  EXPECT_EQ(Parse("")->model_defaults.version_policy.kind, Kind::kLatest);
  EXPECT_EQ(Parse("")->model_defaults.version_policy.latest, 1);
  EXPECT_EQ(Parse("model_defaults: {version_policy: all}\n")->model_defaults.version_policy.kind, Kind::kAll);
  const VersionPolicy latest = Parse("model_defaults: {version_policy: {latest: 3}}\n")->model_defaults.version_policy;
  EXPECT_EQ(latest.kind, Kind::kLatest);
  EXPECT_EQ(latest.latest, 3);
  const VersionPolicy specific =
      Parse("model_defaults: {version_policy: {specific: [2, 7]}}\n")->model_defaults.version_policy;
  EXPECT_EQ(specific.kind, Kind::kSpecific);
  EXPECT_EQ(specific.versions, (std::vector<int64_t>{2, 7}));
  EXPECT_THAT(Error("model_defaults: {version_policy: newest}\n"),
              HasSubstr("model_defaults.version_policy: expected all, {latest: N} or {specific: [versions]}, got 'newest'"));
  EXPECT_THAT(Error("model_defaults: {version_policy: {latest: 0}}\n"),
              HasSubstr("model_defaults.version_policy.latest: expected an integer from 1 to 1000"));
  EXPECT_THAT(Error("model_defaults: {version_policy: {specific: []}}\n"),
              HasSubstr("model_defaults.version_policy.specific: expected a non-empty list of versions"));
  EXPECT_THAT(Error("model_defaults: {version_policy: {newest: 2}}\n"),
              HasSubstr("unknown key 'model_defaults.version_policy.newest' (allowed: latest, specific)"));
}

TEST(ModelConfig, InputAndOutputOverrides) {
  auto c = Parse("model_defaults: {inputs: {x: {dims: [-1, 128]}}, outputs: {y: {dims: [-1, 2]}}}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->model_defaults.inputs.size(), 1u);
  EXPECT_EQ(c->model_defaults.inputs[0].name, "x");
  EXPECT_EQ(c->model_defaults.inputs[0].dims, (std::vector<int64_t>{-1, 128}));
  EXPECT_EQ(c->model_defaults.outputs[0].dims, (std::vector<int64_t>{-1, 2}));
  EXPECT_THAT(Error("model_defaults: {inputs: [x]}\n"), HasSubstr("model_defaults.inputs: expected a mapping of tensor names"));
  EXPECT_THAT(Error("model_defaults: {inputs: {x: {shape: [1]}}}\n"),
              HasSubstr("unknown key 'model_defaults.inputs.x.shape' (allowed: dims)"));
  EXPECT_THAT(Error("model_defaults: {inputs: {x: {}}}\n"), HasSubstr("model_defaults.inputs.x.dims: expected a list of dims"));
  EXPECT_THAT(Error("model_defaults: {outputs: {y: {dims: [-2]}}}\n"),
              HasSubstr("model_defaults.outputs.y.dims[0]: expected an integer from -1 to"));
}

TEST(ModelConfig, ErrorsNameFileKeyAndAllowedValues) {
  EXPECT_THAT(Error("model_defaults: {precision: fp16}\n"),
              HasSubstr("test.yaml: model_defaults.precision: 'fp16' is not a precision (allowed: fp32, bf16, int8)"));
  EXPECT_THAT(Error("model_defaults: {threads: -1}\n"),
              HasSubstr("test.yaml: model_defaults.threads: expected an integer from 0 to 1024, got '-1'"));
  EXPECT_THAT(Error("model_defaults: {batching: on}\n"),
              HasSubstr("unknown key 'model_defaults.batching' (allowed: precision, threads, groups, pipeline, share_cores, max_batch_size"));
  EXPECT_THAT(Error("model_defaults: 3\n"), HasSubstr("model_defaults: expected a mapping of keys, got '3'"));
  const auto dir = coreserve::testing::TempDir("model-config-bad");
  std::ofstream(dir / "config.yaml") << "max_batch_size: many\n";
  auto bad = LoadModelConfig(dir.string(), {});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr((dir / "config.yaml").string() + ": max_batch_size: expected an integer from 0 to 1048576"));
  std::ofstream(dir / "config.yaml", std::ios::trunc) << "precision: [bf16\n";
  bad = LoadModelConfig(dir.string(), {});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("YAML syntax error"));
}

}  // namespace
}  // namespace coreserve
