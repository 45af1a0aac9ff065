#include "server/metrics.h"

#include <httplib.h>

#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/convert/f32_quantize.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm/sgemm.h"
#include "kernels/math/f32_math.h"
#include "kernels/vadd/f32_vadd.h"
#include "prometheus/gauge.h"
#include "prometheus/text_serializer.h"
#include "server/cpus.h"
#include "server/process_stats.h"
#include "server/tls.h"
#include "server/version.h"

namespace coreserve {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric Gauge(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.gauge.value = value;
  m.label = std::move(labels);
  return m;
}

// A runner's histogram as a Prometheus one (cumulative buckets; the +Inf bucket is the serializer's).
template <std::size_t N>
ClientMetric HistogramMetric(const Histogram<N>& h, std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram.sample_count = static_cast<std::uint64_t>(h.count);
  m.histogram.sample_sum = h.sum;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < N; ++i) {
    cumulative += static_cast<std::uint64_t>(h.counts[i]);
    m.histogram.bucket.push_back({cumulative, h.bounds[i]});
  }
  m.histogram.bucket.push_back({static_cast<std::uint64_t>(h.count), std::numeric_limits<double>::infinity()});
  return m;
}

// Figures computed at scrape time: process resources and readiness.
class StateCollector : public prometheus::Collectable {
 public:
  StateCollector(const ServerState* state, double hourly_price) : state_(state), hourly_price_(hourly_price) {}

  std::vector<MetricFamily> Collect() const override {
    const ProcessStats p = ReadProcessStats();
    std::vector<MetricFamily> out;
    auto add = [&out](const char* name, const char* help, MetricType type, double value) {
      MetricFamily f = Family(name, help, type);
      ClientMetric m;
      if (type == MetricType::Counter) m.counter.value = value; else m.gauge.value = value;
      f.metric.push_back(m);
      out.push_back(std::move(f));
    };
    add("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", MetricType::Counter,
        p.cpu_seconds);
    add("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
        static_cast<double>(p.resident_bytes));
    add("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
        static_cast<double>(p.virtual_bytes));
    add("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
        MetricType::Gauge, p.start_time_seconds);
    add("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
        static_cast<double>(p.open_fds));
    add("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
        static_cast<double>(p.max_fds));
    add("coreserve_process_threads", "Number of OS threads in the process.", MetricType::Gauge,
        static_cast<double>(p.threads));
    add("coreserve_server_ready", "1 when the server is ready for inference (all models loaded), else 0.",
        MetricType::Gauge, state_->ready() ? 1 : 0);

    MetricFamily models = Family("coreserve_model_ready", "1 when the model version is loaded and ready, else 0.",
                                 MetricType::Gauge);
    // Requests computed and model executions (a dynamic batch is one execution of several requests).
    MetricFamily inferences = Family("coreserve_inference_count_total",
                                     "Inference requests computed by the model version.", MetricType::Counter);
    MetricFamily executions = Family("coreserve_execution_count_total",
                                     "Model executions; one execution computes a whole dynamic batch.",
                                     MetricType::Counter);
    MetricFamily failures = Family("coreserve_inference_failure_total",
                                   "Requests that got an error, by reason: invalid_argument, queue_full, timeout, "
                                   "cancelled, unavailable, internal.",
                                   MetricType::Counter);
    MetricFamily pending = Family("coreserve_pending_requests", "Requests waiting in the model's queue.",
                                  MetricType::Gauge);
    MetricFamily in_flight = Family("coreserve_inflight_requests", "Requests the model version is computing now.",
                                    MetricType::Gauge);
    MetricFamily load_seconds = Family("coreserve_model_load_duration_seconds",
                                       "Time to read, optimize and start the served model version, in seconds.",
                                       MetricType::Gauge);
    MetricFamily cost = Family("coreserve_cost_per_million_inferences",
                               "hourly_price times the model's share of the host's cores times its compute "
                               "seconds per inference so far, per million inferences: the cost at full load.",
                               MetricType::Gauge);
    const int host_cpus = AvailableCpus();
    MetricFamily instance_runs = Family("coreserve_instance_execution_count_total",
                                        "Executions by each instance (core group) of the model version.",
                                        MetricType::Counter);
    MetricFamily instance_busy = Family("coreserve_instance_busy_seconds_total",
                                        "Time each instance (core group) spent computing; its rate is the "
                                        "instance's busy fraction.", MetricType::Counter);
    MetricFamily stage_runs = Family("coreserve_stage_execution_count_total",
                                     "Batches each pipeline stage ran.", MetricType::Counter);
    MetricFamily stage_busy = Family("coreserve_stage_busy_seconds_total",
                                     "Time each pipeline stage spent computing; its rate is the stage's busy fraction.",
                                     MetricType::Counter);
    MetricFamily stage_queue = Family("coreserve_stage_queue_depth",
                                      "Batches waiting in front of each pipeline stage.", MetricType::Gauge);
    MetricFamily instance_in_flight = Family("coreserve_instance_inflight_requests",
                                             "Requests each instance (core group) is computing now.", MetricType::Gauge);
    MetricFamily request_seconds = Family("coreserve_request_duration_seconds",
                                          "Time from a request's arrival at the model to its answer, successful "
                                          "requests.", MetricType::Histogram);
    MetricFamily queue_seconds = Family("coreserve_queue_duration_seconds",
                                        "Time successful requests waited in the model's queue.", MetricType::Histogram);
    MetricFamily compute_seconds = Family("coreserve_compute_duration_seconds",
                                          "Time of each model execution (one batch).", MetricType::Histogram);
    MetricFamily batch_rows = Family("coreserve_batch_size", "Rows (first-dimension size) of each model execution.",
                                     MetricType::Histogram);
    if (const auto repo = state_->repository()) {
      for (const ModelEntry& e : repo->models()) {
        const std::vector<ClientMetric::Label> labels = {{"model", e.name}, {"version", std::to_string(e.version)}};
        models.metric.push_back(Gauge(e.ready ? 1 : 0, labels));
        if (e.runner == nullptr) continue;
        ClientMetric count;
        count.label = labels;
        const RunnerStats stats = e.runner->stats();
        count.counter.value = static_cast<double>(stats.inference_count);
        inferences.metric.push_back(count);
        count.counter.value = static_cast<double>(stats.execution_count);
        executions.metric.push_back(count);
        for (const auto& [reason, n] : stats.failures) {
          ClientMetric f;
          f.label = labels;
          f.label.push_back({"reason", reason});
          f.counter.value = static_cast<double>(n);
          failures.metric.push_back(std::move(f));
        }
        pending.metric.push_back(Gauge(static_cast<double>(e.runner->pending()), labels));
        in_flight.metric.push_back(Gauge(static_cast<double>(e.runner->in_flight()), labels));
        load_seconds.metric.push_back(Gauge(e.load_seconds, labels));
        const auto instances = e.runner->instance_stats();
        for (std::size_t i = 0; i < instances.size(); ++i) {
          ClientMetric c;
          c.label = labels;
          c.label.push_back({"instance", std::to_string(i)});
          c.label.push_back({"cpus", instances[i].cpus.empty() ? "any" : absl::StrJoin(instances[i].cpus, ",")});
          c.counter.value = static_cast<double>(instances[i].executions);
          instance_runs.metric.push_back(c);
          c.counter.value = instances[i].busy_seconds;
          instance_busy.metric.push_back(c);
          instance_in_flight.metric.push_back(Gauge(static_cast<double>(instances[i].in_flight), c.label));
          for (std::size_t k = 0; k < instances[i].stages.size(); ++k) {
            const ModelRunner::StageStats& st = instances[i].stages[k];
            ClientMetric m;
            m.label = labels;
            m.label.push_back({"instance", std::to_string(i)});
            m.label.push_back({"stage", std::to_string(k)});
            m.label.push_back({"cpus", absl::StrJoin(st.cpus, ",")});
            m.counter.value = static_cast<double>(st.runs);
            stage_runs.metric.push_back(m);
            m.counter.value = st.busy_seconds;
            stage_busy.metric.push_back(m);
            stage_queue.metric.push_back(Gauge(static_cast<double>(st.queue_depth), m.label));
          }
        }
        if (hourly_price_ > 0 && stats.inference_count > 0) {
          const double share = std::min(1.0, static_cast<double>(e.runner->threads()) / host_cpus);
          const double seconds_per_inference = stats.compute_seconds.sum / static_cast<double>(stats.inference_count);
          cost.metric.push_back(Gauge(hourly_price_ / 3600.0 * share * seconds_per_inference * 1e6, labels));
        }
        request_seconds.metric.push_back(HistogramMetric(stats.request_seconds, labels));
        queue_seconds.metric.push_back(HistogramMetric(stats.queue_seconds, labels));
        compute_seconds.metric.push_back(HistogramMetric(stats.compute_seconds, labels));
        batch_rows.metric.push_back(HistogramMetric(stats.batch_rows, labels));
      }
    }
    for (MetricFamily* f : {&models, &inferences, &executions, &failures, &pending, &in_flight, &load_seconds,
                            &instance_runs, &instance_busy, &instance_in_flight, &stage_runs, &stage_busy,
                            &stage_queue,
                            &request_seconds, &queue_seconds, &compute_seconds, &batch_rows}) {
      out.push_back(std::move(*f));
    }
    if (hourly_price_ > 0) out.push_back(std::move(cost));
    return out;
  }

 private:
  const ServerState* state_;
  double hourly_price_;
};

}  // namespace

std::vector<std::pair<std::string, std::string>> ChosenKernels() {
  return {{"f32_vadd", kernels::F32Vadd().name},
          {"sgemm", kernels::SgemmKernelName()},
          {"bf16gemm", kernels::SgemmKernelName(kernels::GemmPrecision::kBf16)},
          {"qgemm", kernels::SgemmKernelName(kernels::GemmPrecision::kInt8)},
          {"f32_math", kernels::F32Math().name},
          {"f32_quantize", kernels::F32Quantize().name}};
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const ListenerConfig& listener,
                                                                     const ServerState* state, double hourly_price) {
  auto server = std::unique_ptr<MetricsServer>(new MetricsServer());
  server->registry_ = std::make_shared<prometheus::Registry>();

  prometheus::BuildGauge()
      .Name("coreserve_build_info")
      .Help("Build facts of the running coreserve binary; the value is always 1.")
      .Register(*server->registry_)
      .Add({{"version", CORESERVE_VERSION},
            {"revision", CORESERVE_REVISION},
            {"build_type", CORESERVE_BUILD_TYPE},
            {"compiler", __VERSION__}})
      .Set(1);
  auto& kernel_info = prometheus::BuildGauge()
                          .Name("coreserve_kernel_info")
                          .Help("The kernel chosen for each kernel family on this CPU; the value is always 1.")
                          .Register(*server->registry_);
  const std::string features = kernels::DescribeCpuFeatures(kernels::ActiveCpuFeatures());
  for (const auto& [family, kernel] : ChosenKernels()) {
    kernel_info.Add({{"family", family}, {"kernel", kernel}, {"cpu_features", features}}).Set(1);
  }

  server->state_collector_ = std::make_unique<StateCollector>(state, hourly_price);

  auto made = MakeHttpServer(listener, "metrics");
  if (!made.ok()) return made.status();
  std::unique_ptr<httplib::Server> http = *std::move(made);
  const MetricsServer* self = server.get();
  http->Get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    // The content type of the Prometheus text exposition format, version 0.0.4.
    res.set_content(self->Scrape(), "text/plain; version=0.0.4; charset=utf-8");
  });
  auto bound = HttpListener::Start(std::move(http), listener, "metrics", /*threads=*/2);
  if (!bound.ok()) return bound.status();
  server->listener_ = *std::move(bound);
  return server;
}

std::string MetricsServer::Scrape() const {
  std::vector<MetricFamily> families = registry_->Collect();
  std::vector<MetricFamily> state = state_collector_->Collect();
  families.insert(families.end(), std::make_move_iterator(state.begin()), std::make_move_iterator(state.end()));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

MetricsServer::~MetricsServer() {
  // Stop serving before the registry and collector the handler reads go away.
  if (listener_) listener_->Stop();
}

}  // namespace coreserve
