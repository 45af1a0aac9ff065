#include "runtime/graph.h"

#include <deque>

#include "absl/strings/str_cat.h"

namespace coreserve::runtime {

template <typename T>
absl::StatusOr<T> Attributes::Get(const std::string& name, T fallback, const char* kind) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (const T* v = std::get_if<T>(&it->second)) return *v;
  return absl::InvalidArgumentError(absl::StrCat(owner, ": attribute '", name, "' must be ", kind));
}

absl::StatusOr<int64_t> Attributes::Int(const std::string& name, int64_t fallback) const {
  return Get<int64_t>(name, fallback, "an int");
}
absl::StatusOr<float> Attributes::Float(const std::string& name, float fallback) const {
  return Get<float>(name, fallback, "a float");
}
absl::StatusOr<std::string> Attributes::String(const std::string& name, const std::string& fallback) const {
  return Get<std::string>(name, fallback, "a string");
}
absl::StatusOr<std::vector<int64_t>> Attributes::Ints(const std::string& name,
                                                      std::vector<int64_t> fallback) const {
  return Get<std::vector<int64_t>>(name, std::move(fallback), "a list of ints");
}
absl::StatusOr<Tensor> Attributes::TensorValue(const std::string& name) const {
  if (!Has(name)) return absl::NotFoundError(absl::StrCat(owner, ": attribute '", name, "' is required"));
  return Get<Tensor>(name, Tensor(), "a tensor");
}

std::string Node::Describe() const {
  return absl::StrCat("node '", name, "' (", domain.empty() ? "" : domain + "::", op_type, ")");
}

int Graph::ValueId(const std::string& name) {
  auto it = by_name_.find(name);
  if (it != by_name_.end()) return it->second;
  const int id = static_cast<int>(values.size());
  values.push_back(Value{});
  values.back().name = name;
  by_name_[name] = id;
  return id;
}

int Graph::FindValue(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : it->second;
}

int Graph::AddConstant(const std::string& name, Tensor tensor) {
  const int id = ValueId(name);
  Value& v = values[id];
  v.type = tensor.type();
  v.shape = tensor.shape();
  v.constant = std::move(tensor);
  return id;
}

std::string Graph::UniqueName(const std::string& base) {
  std::string name;
  do {
    name = absl::StrCat(base, "__cs", unique_counter_++);
  } while (by_name_.count(name));
  return name;
}

void Graph::RebuildEdges() {
  for (Value& v : values) {
    v.producer = -1;
    v.consumers.clear();
  }
  for (int n = 0; n < static_cast<int>(nodes.size()); ++n) {
    if (nodes[n].dead) continue;
    for (int in : nodes[n].inputs) {
      if (in >= 0) values[in].consumers.push_back(n);
    }
    for (int out : nodes[n].outputs) {
      if (out >= 0) values[out].producer = n;
    }
  }
}

void Graph::Compact() {
  std::vector<Node> live;
  live.reserve(nodes.size());
  for (Node& n : nodes) {
    if (!n.dead) live.push_back(std::move(n));
  }
  nodes = std::move(live);
  RebuildEdges();
}

absl::StatusOr<std::vector<int>> Graph::TopologicalOrder() const {
  // Kahn's algorithm over live nodes, keeping the model's order among ready nodes (stable, deterministic).
  std::vector<int> pending(nodes.size(), 0);
  std::vector<std::vector<int>> users(values.size());
  std::vector<bool> available(values.size(), false);
  for (std::size_t v = 0; v < values.size(); ++v) {
    available[v] = values[v].constant.has_value() || values[v].graph_input;
  }
  for (int n = 0; n < static_cast<int>(nodes.size()); ++n) {
    if (nodes[n].dead) continue;
    for (int in : nodes[n].inputs) {
      if (in < 0 || available[in]) continue;
      if (values[in].producer < 0) {
        return absl::InvalidArgumentError(absl::StrCat(nodes[n].Describe(), ": input '", values[in].name,
                                                       "' is not a graph input, initializer or node output"));
      }
      ++pending[n];
      users[in].push_back(n);
    }
  }
  std::deque<int> ready;
  for (int n = 0; n < static_cast<int>(nodes.size()); ++n) {
    if (!nodes[n].dead && pending[n] == 0) ready.push_back(n);
  }
  std::vector<int> order;
  while (!ready.empty()) {
    const int n = ready.front();
    ready.pop_front();
    order.push_back(n);
    for (int out : nodes[n].outputs) {
      if (out < 0) continue;
      for (int user : users[out]) {
        if (--pending[user] == 0) ready.push_back(user);
      }
      users[out].clear();
    }
  }
  for (int n = 0; n < static_cast<int>(nodes.size()); ++n) {
    if (!nodes[n].dead && pending[n] > 0) {
      return absl::InvalidArgumentError(absl::StrCat(nodes[n].Describe(), ": is on a cycle"));
    }
  }
  return order;
}

}  // namespace coreserve::runtime
