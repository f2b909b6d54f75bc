-- Argo CD health check for tracardi.com/TracardiInstallation (embedded in argocd-cm-patch.yaml).
-- Argo CD runs it with gopher-lua (Lua 5.1): no goto, no integer division, no 5.3+ library calls.
-- The conditions are the contract (metav1.Condition); status.phase is only a summary for people.
local hs = {}

local function condition(type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  if text == "" then
    return fallback
  end
  return text
end

local generation = obj.metadata.generation
local wanted = obj.spec ~= nil and obj.spec.version or nil

-- Nothing the operator says is about the current spec until it has observed this generation.
if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation) ..
    " (observed " .. tostring(obj.status.observedGeneration) .. ")"
  return hs
end

-- Paused first: nothing moves while paused, whatever else the conditions say.
local paused = condition("Paused")
if is_true(paused) then
  hs.status = "Suspended"
  hs.message = describe(paused, "Paused: spec.paused is set")
  return hs
end

local degraded = condition("Degraded")
if is_true(degraded) then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Degraded")
  return hs
end

local ready = condition("Ready")
local current = obj.status.currentVersion
local ready_now = is_true(ready) and
  (ready.observedGeneration == nil or generation == nil or ready.observedGeneration == generation)
if ready_now and wanted ~= nil and current == wanted then
  hs.status = "Healthy"
  hs.message = "Tracardi " .. tostring(current) .. " is ready"
  return hs
end

hs.status = "Progressing"
local progressing = condition("Progressing")
if is_true(progressing) then
  hs.message = describe(progressing, "Progressing")
elseif current ~= nil and current ~= wanted then
  hs.message = "Moving from " .. tostring(current) .. " to " .. tostring(wanted)
else
  hs.message = describe(ready, "Waiting for Tracardi " .. tostring(wanted) .. " to become ready")
end
return hs
