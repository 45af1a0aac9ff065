#include "server/grpc_frontend.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "inference.grpc.pb.h"
#include "server/grpc_infer.h"
#include "server/http_listener.h"
#include "server/log.h"
#include "server/model_control.h"
#include "server/tls.h"
#include "server/triton_config.h"
#include "server/v2_datatype.h"
#include "server/version.h"

namespace coreserve {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

namespace {

constexpr char kServiceName[] = "inference.GRPCInferenceService";

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

void FillTensors(const std::vector<runtime::TensorInfo>& tensors,
                 google::protobuf::RepeatedPtrField<inference::ModelMetadataResponse::TensorMetadata>* out) {
  for (const runtime::TensorInfo& t : tensors) {
    auto* m = out->Add();
    m->set_name(t.name);
    m->set_datatype(std::string(V2DataTypeName(t.type)));
    for (int64_t d : t.shape) m->add_shape(d);
  }
}

}  // namespace

class V2GrpcService final : public inference::GRPCInferenceService::CallbackService {
 public:
  V2GrpcService(const ServerState* state, ModelControl* control) : state_(state), control_(control) {
    worker_ = std::thread([this] { Work(); });
  }
  ~V2GrpcService() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* response) override {
    response->set_live(state_->live());
    return Finish(context, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* response) override {
    response->set_ready(state_->ready());
    return Finish(context, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest*,
                                           inference::ServerMetadataResponse* response) override {
    response->set_name("coreserve");
    response->set_version(CORESERVE_VERSION);
    for (const char* e : kServerExtensions) response->add_extensions(e);
    return Finish(context, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context, const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override {
    auto found = Find(request->name(), request->version());
    if (found.ok()) response->set_ready(found->entry->ready);
    return Finish(context, found.status());
  }

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override {
    auto found = Find(request->name(), request->version());
    if (!found.ok()) return Finish(context, found.status());
    const ModelEntry& e = *found->entry;
    if (!e.ready) {
      return Finish(context, absl::UnavailableError(absl::StrCat("model '", e.name, "' is not ready: ", e.ClientError())));
    }
    response->set_name(e.name);
    for (int64_t v : e.served) response->add_versions(std::to_string(v));
    response->set_platform("onnx_onnxv1");
    FillTensors(e.info.inputs, response->mutable_inputs());
    FillTensors(e.info.outputs, response->mutable_outputs());
    return Finish(context, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context, const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override {
    auto found = Find(request->name(), request->version());
    if (!found.ok()) return Finish(context, found.status());
    const ModelEntry& e = *found->entry;
    if (!e.ready) {
      return Finish(context, absl::UnavailableError(absl::StrCat("model '", e.name, "' is not ready: ", e.ClientError())));
    }
    FillModelConfig(e, response->mutable_config());
    return Finish(context, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override {
    if (request->name().empty()) {
      const auto repo = state_->repository();
      if (repo == nullptr) return Finish(context, absl::UnavailableError("the model repository is still loading"));
      for (const ModelEntry& e : repo->models()) FillModelStatistics(e, response->add_model_stats());
      return Finish(context, absl::OkStatus());
    }
    auto found = Find(request->name(), request->version());
    if (!found.ok()) return Finish(context, found.status());
    FillModelStatistics(*found->entry, response->add_model_stats());
    return Finish(context, absl::OkStatus());
  }

  // Triton's model repository extension. The index is read at once; loads and unloads take as long as reading a
  // model does, so they run on the service's own worker thread, which finishes the RPC.
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override {
    if (control_ == nullptr) return Finish(context, absl::UnimplementedError("model control is not available"));
    if (absl::Status allowed = Authorize(*context); !allowed.ok()) return Finish(context, allowed);
    for (const ModelControl::IndexEntry& e : control_->Index()) {
      if (request->ready() && e.state != "READY") continue;
      auto* m = response->add_models();
      m->set_name(e.name);
      m->set_version(e.version);
      m->set_state(e.state);
      m->set_reason(e.reason);
    }
    return Finish(context, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* RepositoryModelLoad(grpc::CallbackServerContext* context,
                                                const inference::RepositoryModelLoadRequest* request,
                                                inference::RepositoryModelLoadResponse*) override {
    if (control_ == nullptr) return Finish(context, absl::UnimplementedError("model control is not available"));
    if (absl::Status allowed = Authorize(*context); !allowed.ok()) return Finish(context, allowed);
    return OnWorker(context, [this, name = request->model_name()] { return control_->Load(name); });
  }

  grpc::ServerUnaryReactor* RepositoryModelUnload(grpc::CallbackServerContext* context,
                                                  const inference::RepositoryModelUnloadRequest* request,
                                                  inference::RepositoryModelUnloadResponse*) override {
    if (control_ == nullptr) return Finish(context, absl::UnimplementedError("model control is not available"));
    if (absl::Status allowed = Authorize(*context); !allowed.ok()) return Finish(context, allowed);
    return OnWorker(context, [this, name = request->model_name()] { return control_->Unload(name); });
  }

  // Converts and queues the request; the runner finishes the RPC from its own thread when the outputs are
  // ready, so no gRPC thread waits on compute.
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override {
    auto found = Find(request->model_name(), request->model_version());
    if (!found.ok()) return Finish(context, found.status());
    if (state_->shutting_down()) return Finish(context, absl::UnavailableError("the server is shutting down"));
    const ModelEntry& e = *found->entry;
    if (!e.ready) {
      return Finish(context, absl::UnavailableError(absl::StrCat("model '", e.name, "' is not ready: ", e.ClientError())));
    }
    absl::StatusOr<InferRequest> infer = InferRequestFromProto(*request);
    if (!infer.ok()) return Finish(context, infer.status());
    // The client's deadline bounds the request's time in the queue, and a request whose client has gone (deadline
    // passed or cancelled) is not computed. The context stays valid until the reactor finishes.
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      infer->deadline = BatchClock::now() + std::chrono::duration_cast<BatchClock::duration>(
                                                context->deadline() - std::chrono::system_clock::now());
    }
    infer->cancelled = [context] { return context->IsCancelled(); };
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    // The callback holds the repository snapshot, so the entry (and its runner) outlive the request.
    e.runner->Submit(*std::move(infer), [reactor, response, hold = found->repository, entry = &e,
                                         id = request->id()](absl::StatusOr<NamedTensors> outputs) {
      if (!outputs.ok()) {
        reactor->Finish(ToGrpcStatus(outputs.status()));
        return;
      }
      FillInferResponse(entry->name, entry->version, id, *outputs, response);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

 private:
  // ModelControl::Authorize on the call's "authorization" metadata; a refusal is logged without the value.
  absl::Status Authorize(const grpc::CallbackServerContext& context) const {
    const auto& metadata = context.client_metadata();
    const auto it = metadata.find("authorization");
    const std::string_view header = it == metadata.end() ? std::string_view()
                                                         : std::string_view(it->second.data(), it->second.size());
    absl::Status status = control_->Authorize(header);
    if (!status.ok()) LOG_WARNING("grpc repository call from ", context.peer(), ": refused: ", status.message());
    return status;
  }

  // A model entry together with the repository snapshot that owns it, so a concurrent repository swap
  // cannot free the entry while this call reads it.
  struct Found {
    std::shared_ptr<const ModelRepository> repository;
    const ModelEntry* entry = nullptr;
  };

  absl::StatusOr<Found> Find(const std::string& name, const std::string& version) {
    Found found{state_->repository()};
    if (found.repository == nullptr) return absl::UnavailableError("the model repository is still loading");
    auto entry = found.repository->Find(name, version);
    if (!entry.ok()) return entry.status();
    found.entry = *entry;
    return found;
  }

  // Runs `change` on the worker thread, which then finishes the RPC with its status.
  grpc::ServerUnaryReactor* OnWorker(grpc::CallbackServerContext* context, std::function<absl::Status()> change) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back([reactor, change = std::move(change)] { reactor->Finish(ToGrpcStatus(change())); });
    }
    wake_.notify_one();
    return reactor;
  }

  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and every accepted change done
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  const ServerState* state_;
  ModelControl* control_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread worker_;
};

GrpcFrontend::GrpcFrontend() = default;

absl::StatusOr<std::unique_ptr<GrpcFrontend>> GrpcFrontend::Start(const ListenerConfig& listener,
                                                                   int64_t max_request_bytes,
                                                                   const ServerState* state, ModelControl* control) {
  auto fe = std::unique_ptr<GrpcFrontend>(new GrpcFrontend());
  fe->service_ = std::make_unique<V2GrpcService>(state, control);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  const std::string address = JoinHostPort(listener.address, listener.port);
  int selected_port = 0;
  // gRPC sets SO_REUSEPORT by default, which would let a second server share (and steal from) a busy port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  auto credentials = MakeGrpcCredentials(listener, "grpc");
  if (!credentials.ok()) return credentials.status();
  builder.AddListeningPort(address, *credentials, &selected_port);
  // The same bound as HTTP bodies (gRPC's own default is 4 MB: a batch of 8 ResNet-50 images is 4.8 MB). A
  // larger request fails with RESOURCE_EXHAUSTED before it is parsed.
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<int64_t>(max_request_bytes, std::numeric_limits<int>::max())));
  builder.RegisterService(fe->service_.get());
  fe->server_ = builder.BuildAndStart();
  if (fe->server_ == nullptr || selected_port == 0) {
    return absl::UnavailableError(absl::StrCat("grpc: cannot listen on ", address));
  }
  fe->port_ = selected_port;
  fe->SetServing(false);
  return fe;
}

void GrpcFrontend::SetServing(bool serving) {
  if (server_ == nullptr) return;
  if (auto* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(serving);
    health->SetServingStatus(kServiceName, serving);
  }
}

void GrpcFrontend::Stop(double grace_seconds) {
  if (server_ == nullptr) return;
  SetServing(false);
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(grace_seconds * 1000)));
  server_->Wait();
  server_.reset();
}

GrpcFrontend::~GrpcFrontend() { Stop(0); }

}  // namespace coreserve
