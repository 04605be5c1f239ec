// vdens/port_stats.h — one network port's frame counters and the line --net-stats prints for
// it ("vde0 (vde): to view 12 frames 3456 B, from view …, dropped …"), shared by vu-net's pump
// (ns views, vdens/pump.h) and vu-vstack (pvm views on VDE, pvm/vstack.h): the same figures
// in the same words on either backend.
#pragma once

#include <cstdint>
#include <string>

namespace vu::vdens {

struct PortStats {
  uint64_t to_view_frames = 0, to_view_bytes = 0;
  uint64_t from_view_frames = 0, from_view_bytes = 0;
  uint64_t runts = 0, oversize = 0, write_errors = 0;
  uint64_t acks_coalesced = 0;  // pure ACKs to the view replaced by a newer one (slirp)
};

inline std::string stats_line(const std::string& name, const std::string& kind, const PortStats& s) {
  return name + " (" + kind + "): to view " + std::to_string(s.to_view_frames) + " frames " +
         std::to_string(s.to_view_bytes) + " B, from view " + std::to_string(s.from_view_frames) + " frames " +
         std::to_string(s.from_view_bytes) + " B, dropped " + std::to_string(s.runts) + " runt " +
         std::to_string(s.oversize) + " oversize " + std::to_string(s.write_errors) + " write errors" +
         (s.acks_coalesced ? "; " + std::to_string(s.acks_coalesced) + " ACKs coalesced" : "");
}

}  // namespace vu::vdens
