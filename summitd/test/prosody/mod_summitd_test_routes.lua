-- Test-only Prosody module for summitd's federation tests: s2s connections to the
-- domains in `summitd_test_routes` go to a fixed address and port instead of DNS,
-- like summitd's own [s2s] static_routes. Loopback tests have no DNS for *.test.
--
--   summitd_test_routes = { ["summitd.test"] = { "127.0.0.2", 5269 } }

local service = require "net.resolvers.service";
local manual = require "net.resolvers.manual";

local routes = module:get_option("summitd_test_routes", {});
local original_new = service.new;

function service.new(hostname, service_name, proto, extra)
	local route = routes[hostname];
	if route and (service_name == "xmpp-server" or service_name == "xmpps-server") then
		local targets = {};
		if service_name == "xmpp-server" then
			targets[1] = { "tcp4", route[1], route[2], extra };
		end
		module:log("debug", "static route for %s (%s): %s", hostname, service_name, #targets > 0 and route[1] or "none");
		return manual.new(targets, proto, extra);
	end
	return original_new(hostname, service_name, proto, extra);
end

function module.unload()
	service.new = original_new;
end
