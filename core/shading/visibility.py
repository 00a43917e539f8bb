"""Visibility in the physics prior: the env map's dominant lights with screen-space shadows, and the
rest of the sky through screen-space occlusion (beyond the paper; docs/MODEL.md, "Model v3").

The Deferred shader (deferred.py) lights every pixel with the whole env map as if nothing stood in
the way. Here the camera-view env map is split, energy-conserving, into up to MAX_LIGHTS lights
(the texels far above the map's mean, clustered: a sun, softboxes, a bright window) and the
residual map (those texels clipped to the threshold). Then per pixel:

    beauty = D·(AO·E_res + Σ_i V_i·E_i·max(0, n·l_i)/π) + S·SO·P_res + Σ_i V_i·E_i·f(v, l_i)·max(0, n·l_i)

with D the diffuse colour and S the split-sum specular albedo of deferred.py, E_res the residual's
SH irradiance / π, P_res its GGX-prefiltered map along the reflection, E_i a light's irradiance, f
the GGX specular BRDF evaluated towards it (the prefiltered maps, convolved at 32 rows, would smear
a sun's glint; its lobe is widened by the light's size and the pixel's footprint instead), V_i a
soft shadow ray-marched against the depth buffer toward the light (several rays over a large
light's extent), AO the share of cosine-weighted hemisphere rays that leave without hitting the
depth buffer, and SO the visibility along the reflection (blended with AO by roughness).
Blocked rays see the surface they meet, lit by a first pass (one bounce). Each pixel casts few
rays, dithered from pixel to pixel, so AO and the bounce are averaged over 5×5 pixels of similar
depth, V and the reflection over 3×3 (no stipple on faces lit by bounce light). Rays that leave
the screen meet the depth buffer's border pixels, so a room whose walls and ceiling fill the frame
stays enclosed and is lit only where its openings show the sky.

Screen space cannot see what the camera does not: an occluder off screen casts no shadow, an
object's back is assumed to be THICKNESS times its depth thick, and an opening off screen is
taken for wall. Every term depends on the env map linearly and on the geometry only otherwise,
so scaling the env map by k scales the result by k exactly; nothing is random.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from renderflow.core.io.buffers import GBuffers
from renderflow.core.model import encodings as enc
from renderflow.core.shading import rays
from renderflow.core.shading.deferred import (
    Surface,
    camera_view_directions,
    prefiltered_envmaps,
    sample_camera_view,
    sample_prefiltered,
    sh_coefficients,
    sh_irradiance_of,
    solid_angles,
    surface,
)
from renderflow.core.shading.lighting import LUMINANCE_WEIGHTS
from renderflow.core.shading.pixel_filter import gaussian_blur

MAX_LIGHTS = 3
LIGHT_CONTRAST = 6.0  # texels brighter than this × the map's mean luminance may belong to a light
LIGHT_MIN_SHARE = 0.05  # a light carries at least this share of the map's energy ∫Y dΩ
LIGHT_CLUSTER_RADIANS = math.radians(25.0)  # texels this close to a light's peak join it
SOFT_SHADOW_RADIANS = math.radians(2.0)  # lights wider than this cast soft shadows (5 rays)
SHADOW_STEPS = 16
OCCLUSION_DIRECTIONS = 8
OCCLUSION_STEPS = 12
RAY_RANGE = 2.0  # rays march this many times the pixel's depth
THICKNESS = 0.6  # an occluder is this many times its depth thick (behind its visible surface)
NORMAL_OFFSET = 0.01  # rays start this many times the depth off the surface (no self-shadowing)
ENCLOSURE_SKY_SHARE = 0.1  # a sequence showing at least this much sky is open beyond the view
# ... and enclosed when this share of its surfaces faces each other across one axis (walls, floor
# and ceiling); a share of OPPOSING_FLOOR or less (a sphere's sides) is no evidence
OPPOSING_FULL, OPPOSING_FLOOR = 0.2, 0.05
MARCH_FULL_RES_MAX = 128  # frames up to this size march a ray set from every pixel; larger, every second
DEPTH_BIAS = 0.01  # a sample is behind the depth buffer when beyond it by this share of its depth
BAYER_4 = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16 + 1 / 32


@dataclass
class EnvLight:
    """One light of a camera-view env map."""

    direction: torch.Tensor  # [3] camera space, unit: the radiance-weighted mean direction
    irradiance: torch.Tensor  # [3] ∫ L dΩ over the light (the irradiance at normal incidence)
    radius: float  # angular radius in radians (radiance-weighted RMS distance from the direction)
    radiance: torch.Tensor  # [He, We, 3]: the light's share of the map (zero elsewhere)


def split_lights(envmap_cam: torch.Tensor) -> tuple[list[EnvLight], torch.Tensor]:
    """A camera-view env map `[He, We, 3]` as its lights and the residual map; lights + residual
    = the map exactly."""
    height, width, _ = envmap_cam.shape
    env = envmap_cam.double()
    directions = camera_view_directions(height, width)  # [He, We, 3]
    omega = solid_angles(height, width).expand(height, width)
    luminance = env @ torch.from_numpy(LUMINANCE_WEIGHTS)
    total = float((luminance * omega).sum())
    threshold = LIGHT_CONTRAST * total / (4 * math.pi)
    excess = (luminance - threshold).clamp_min(0)  # per texel, above the threshold
    energy = excess * omega
    free = energy > 0
    lights, residual = [], env.clone()
    for _ in range(MAX_LIGHTS):
        if not free.any() or total <= 0:
            break
        peak = directions.reshape(-1, 3)[torch.argmax(torch.where(free, energy, -1.0))]
        member = free & ((directions @ peak).clamp(-1, 1).acos() < LIGHT_CLUSTER_RADIANS)
        weight = torch.where(member, energy, 0.0)
        if float(weight.sum()) < LIGHT_MIN_SHARE * total:
            break
        free &= ~member
        share = torch.where(member, excess / luminance.clamp_min(1e-30), 0.0)[..., None]  # of each texel
        radiance = env * share  # the texels' radiance above the threshold, colour kept
        residual -= radiance
        mean = F.normalize((directions * weight[..., None]).sum((0, 1)), dim=0)
        angle = (directions @ mean).clamp(-1, 1).acos()
        radius = float(torch.sqrt((angle**2 * weight).sum() / weight.sum()))
        irradiance = (radiance * omega[..., None]).sum((0, 1))
        lights.append(EnvLight(mean, irradiance, radius, radiance))
    return lights, residual


def enclosure(gbuffers: GBuffers) -> float:
    """How enclosed the space of a sequence is, 0 (open) to 1 (a closed room): rays that leave the
    view meet wall with this probability. Evidence, over all frames at once (no flicker): little sky
    in view, and surfaces facing each other (camera-space normals beyond ±0.5 on x or y)."""
    finite = np.isfinite(gbuffers.depth[..., 0])
    if not finite.any():
        return 0.0
    sky_share = 1.0 - float(finite.mean())
    normals = gbuffers.normal[finite]  # [N, 3]
    opposing = max(min(float((axis > 0.5).mean()), float((axis < -0.5).mean())) for axis in normals[:, :2].T)
    facing = min(1.0, max(0.0, (opposing - OPPOSING_FLOOR) / (OPPOSING_FULL - OPPOSING_FLOOR)))
    return facing * max(0.0, 1.0 - sky_share / ENCLOSURE_SKY_SHARE)


def shade_with_visibility(
    gbuffers: GBuffers, envmap_cam: np.ndarray, vertical_fov_degrees: float, visibility_blur: float = 0.0
) -> np.ndarray:
    """Scene-linear beauty `[F, H, W, 3]` of the G-buffers under camera-view env maps `[F, He, We, 3]`
    (or one `[He, We, 3]` for all frames), with shadows and occlusion (module docstring).

    `visibility_blur` (pixels, 0: none) averages the visibility terms (occlusion, the lights'
    shadows, the reflection's visibility, the bounce) over a Gaussian: for G-buffers decomposed from
    a plate, whose depth carries the inverse adapter's 8-pixel token grid, which the rays would
    otherwise read as occluders, a dot per token (core/shot/workflows.py)."""
    num_frames, height, width = gbuffers.validate()
    env = torch.from_numpy(np.ascontiguousarray(envmap_cam, dtype=np.float32))
    if env.ndim == 3:
        env = env[None].expand(num_frames, *env.shape)
    if env.ndim != 4 or env.shape[0] != num_frames or env.shape[-1] != 3:
        raise ValueError(
            f"env map: expected [He, We, 3] or [{num_frames}, He, We, 3], got {list(envmap_cam.shape)}"
        )
    view = torch.from_numpy(rays.view_rays(height, width, vertical_fov_degrees))  # [H, W, 3]
    enclosed = enclosure(gbuffers)
    out = np.empty((num_frames, height, width, 3), np.float32)
    for frame in range(num_frames):
        frame_buffers = GBuffers(*(buffer[frame : frame + 1] for buffer in _buffers(gbuffers)))
        out[frame] = _shade_frame(
            frame_buffers, env[frame], view, vertical_fov_degrees, enclosed, visibility_blur
        )
    return out


def _buffers(gbuffers: GBuffers) -> tuple[np.ndarray, ...]:
    return gbuffers.albedo, gbuffers.normal, gbuffers.depth, gbuffers.material


def _shade_frame(
    gbuffers: GBuffers, env: torch.Tensor, view: torch.Tensor, fov: float, enclosed: float, blur: float
) -> np.ndarray:
    """One frame (`gbuffers` of one frame, its env map `[He, We, 3]`) -> `[H, W, 3]`, its visibility
    terms averaged over a Gaussian of `blur` pixels (0: none)."""
    shading = surface(gbuffers, view[None], slice(None))
    depth = torch.from_numpy(gbuffers.depth[0, ..., 0]).double()  # [H, W], inf on the background
    normal = shading.normal[0]
    smooth = _geometry_blur(~shading.background[0], blur)
    stride = march_stride(*depth.shape)
    marcher = Marcher(depth, normal, fov, enclosed, stride)
    lights, residual = split_lights(env)

    on_grid = (slice(None, None, stride), slice(None, None, stride))
    occlusion, occluders = marcher.upsample(*marcher.occlusion(normal[on_grid]))  # [H, W], [D, H, W]
    reflected = F.normalize(shading.reflected[0][on_grid], dim=-1)
    reflection, mirrored = marcher.upsample(*marcher.march(reflected, SHADOW_STEPS))
    occlusion, reflection = smooth(occlusion), smooth(reflection)
    roughness = shading.roughness[0][..., None]
    sky_irradiance = sh_irradiance_of(sh_coefficients(residual[None]), normal[None])[0] / math.pi
    levels = prefiltered_envmaps(residual[None].float())
    sky_reflection = sample_prefiltered(levels, shading.reflected, shading.roughness)[0].double()
    footprint = _pixel_footprint(normal, math.radians(fov) / depth.shape[0])
    direct_diffuse = torch.zeros_like(sky_irradiance)
    direct_specular = torch.zeros_like(sky_reflection)
    for light in lights:
        shadow = marcher.upsample(marcher.soft_visibility(light.direction, light.radius))[0]
        shadow = smooth(_depth_aware_blur(shadow, depth, SHADOW_BLUR_RADIUS))[..., None]
        cosine = (normal @ light.direction).clamp_min(0)[..., None]
        direct_diffuse += shadow * light.irradiance * cosine / math.pi
        direct_specular += shadow * light.irradiance * cosine * _ggx_brdf(shading, light, footprint)
    sky = sample_camera_view(env[None].double(), view[None])[0].double()

    def compose(bounce: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
        """The frame, given the radiance blocked occlusion rays bring back (`bounce`, already weighted
        by their share) and what the reflection sees (`mirror`)."""
        ambient = occlusion[..., None] * sky_irradiance + bounce
        glossy = mirror + (ambient - mirror) * roughness  # rough lobes see what the hemisphere sees
        beauty = shading.diffuse_colour[0] * (ambient + direct_diffuse)
        beauty = beauty + shading.specular_albedo[0] * glossy + direct_specular
        return torch.where(shading.background[0][..., None], sky, beauty)

    # one bounce: blocked rays see the surface they meet, lit as the first pass lights it
    sky_mirror = reflection[..., None] * sky_reflection
    first = compose(torch.zeros_like(sky_irradiance), sky_mirror).reshape(-1, 3)
    seen = torch.where(occluders[..., None] >= 0, first[occluders.clamp_min(0)], 0.0)  # [D, H, W, 3]
    # few rays per pixel, dithered: the bounce and the mirror are averaged like the occlusion
    bounce = smooth(_depth_aware_blur(seen.mean(0), depth))
    mean_seen = seen.sum(0) / (occluders >= 0).sum(0).clamp_min(1)[..., None]
    bounce_specular = torch.where(mirrored[..., None] >= 0, first[mirrored.clamp_min(0)], mean_seen)
    mirror = _depth_aware_blur(
        sky_mirror + (1 - reflection[..., None]) * bounce_specular, depth, SHADOW_BLUR_RADIUS
    )
    return compose(bounce, mirror).float().numpy()


def _geometry_blur(geometry: torch.Tensor, sigma: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A Gaussian of `sigma` pixels (0: the identity) over the `geometry` pixels `[H, W]` of a map
    `[H, W]` or `[H, W, C]`: the background neither gives nor takes."""
    if sigma <= 0:
        return lambda values: values
    weight = geometry.double()[None, None]  # [1, 1, H, W]
    norm = gaussian_blur(weight, sigma).clamp_min(1e-12)

    def blurred(values: torch.Tensor) -> torch.Tensor:
        image = values[None, None] if values.ndim == 2 else values.permute(2, 0, 1)[None]
        result = (gaussian_blur(image * weight, sigma) / norm)[0]
        result = result[0] if values.ndim == 2 else result.permute(1, 2, 0)
        return torch.where(geometry if values.ndim == 2 else geometry[..., None], result, values)

    return blurred


def _ggx_brdf(shading: Surface, light: EnvLight, footprint: torch.Tensor) -> torch.Tensor:
    """The specular GGX microfacet BRDF `[H, W, 3]` of one frame towards a light (Smith
    height-correlated, Schlick Fresnel, roughness² = α as the path tracer's principled BSDF), its
    distribution widened by the light's angular radius and the pixel's `footprint` `[H, W]`."""
    normal, to_eye = shading.normal[0], shading.to_eye[0]
    alpha = shading.roughness[0] ** 2
    alpha_wide = torch.sqrt(alpha**2 + (light.radius / 2) ** 2 + footprint**2)
    half = F.normalize(to_eye + light.direction, dim=-1)
    n_dot_h = (normal * half).sum(-1).clamp_min(0)
    n_dot_l = (normal @ light.direction).clamp_min(1e-4)
    n_dot_v = (normal * to_eye).sum(-1).clamp_min(1e-4)
    a2 = alpha_wide**2
    distribution = a2 / (math.pi * (n_dot_h**2 * (a2 - 1) + 1) ** 2)
    g2 = alpha**2
    visibility = 0.5 / (
        n_dot_l * torch.sqrt(n_dot_v**2 * (1 - g2) + g2) + n_dot_v * torch.sqrt(n_dot_l**2 * (1 - g2) + g2)
    )
    v_dot_h = (to_eye * half).sum(-1).clamp(0, 1)
    f0 = shading.specular_colour[0]
    fresnel = f0 + (1 - f0) * ((1 - v_dot_h) ** 5)[..., None]
    return (distribution * visibility)[..., None] * fresnel


def _pixel_footprint(normal: torch.Tensor, pixel_radians: float) -> torch.Tensor:
    """How far the half vector towards a light turns within each pixel `[H, W]`, as the standard
    deviation of a uniform spread (÷ √12): half the view ray's turn across the pixel plus the normal's
    turn to the next pixel (at most 0.5 rad: silhouettes). A glint narrower than its pixel is spread
    over it instead of being point-sampled at its centre (the path tracer averages over the pixel)."""
    across = (normal[:, 1:] - normal[:, :-1]).square().sum(-1).sqrt()  # [H, W - 1]
    down = (normal[1:] - normal[:-1]).square().sum(-1).sqrt()  # [H - 1, W]
    spread = torch.zeros(normal.shape[:2], dtype=normal.dtype)
    for step, before, after in (
        (across, (slice(None), slice(1, None)), (slice(None), slice(None, -1))),
        (down, (slice(1, None), slice(None)), (slice(None, -1), slice(None))),
    ):
        spread[before] = torch.maximum(spread[before], step)
        spread[after] = torch.maximum(spread[after], step)
    return (pixel_radians / 2 + spread.clamp_max(0.5)) / math.sqrt(12)


def march_stride(height: int, width: int) -> int:
    """Rays start from every `stride`-th pixel in each direction: 1 up to MARCH_FULL_RES_MAX, 2 above
    (a quarter of the rays; the results are upsampled guided by depth, `Marcher.upsample`)."""
    return 1 if max(height, width) <= MARCH_FULL_RES_MAX else 2


class Marcher:
    """Rays from the surface points of a grid of pixels (every `stride`-th: the ray grid `[h, w]`),
    marched against the frame's full depth buffer `[H, W]`."""

    def __init__(
        self,
        depth: torch.Tensor,
        normal: torch.Tensor,
        vertical_fov_degrees: float,
        enclosure: float = 0.0,
        stride: int = 1,
    ) -> None:
        """`depth` `[H, W]` planar (inf on the background), `normal` `[H, W, 3]` camera space,
        `enclosure` how enclosed the space is (`enclosure()`)."""
        self.height, self.width = depth.shape
        self.stride = stride
        grid = (slice(None, None, stride), slice(None, None, stride))
        self.tan_half = math.tan(math.radians(vertical_fov_degrees) / 2)
        finite = torch.isfinite(depth)
        planar = torch.where(finite, depth, 0.0)
        pixel_rays = torch.from_numpy(rays.pixel_rays(self.height, self.width, vertical_fov_degrees))
        # marching runs in float32: positions need no more, and it halves the time
        origins = pixel_rays * planar[..., None] + normal * NORMAL_OFFSET * planar[..., None]
        self.origins = origins[grid].float()  # [h, w, 3]
        self.range = (planar[grid] * RAY_RANGE).float()  # [h, w]
        self.grid_shape = tuple(self.range.shape)
        self.depth = depth.reshape(-1).float()  # inf on the background: never occludes
        # how much the depth changes to the next pixel: a sample is behind the buffer only beyond
        # that (a flat floor seen at a grazing angle must not occlude itself)
        self.slack = _depth_step(depth).reshape(-1).float()
        # how thick a surface is behind its visible point: THICKNESS × depth where it faces the camera,
        # nothing at a silhouette (a ray passing just behind a sphere's outline is not blocked)
        facing = (F.normalize(pixel_rays, dim=-1) * normal).sum(-1).abs()
        self.thickness = (THICKNESS * facing * planar).reshape(-1).float()
        self.unknown_open = 1.0 - enclosure  # what a ray that leaves the view meets, unseen
        rows, columns = self.grid_shape
        tiles = (rows + 3) // 4, (columns + 3) // 4
        self.jitter = torch.from_numpy(np.tile(BAYER_4, tiles)[:rows, :columns]).float()
        self.grid_depth = depth[grid]  # [h, w]
        # [H, W] flat index into the ray grid (strided marches only: stride 1 needs no upsampling)
        self.nearest = _nearest_grid_pixel(depth, stride) if stride > 1 else None

    def upsample(self, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Each of `values` `[..., h, w]` on the ray grid at every pixel `[..., H, W]`: the value of the
        neighbouring grid pixel nearest in depth (stride 1: unchanged)."""
        if self.nearest is None:
            return values
        nearest = self.nearest
        return tuple(value.reshape(*value.shape[:-2], -1)[..., nearest] for value in values)

    def visibility(self, direction: torch.Tensor, steps: int = SHADOW_STEPS) -> torch.Tensor:
        """How open the ray from each grid pixel along `direction` (`[3]` or `[h, w, 3]`, unit) is: 0
        where it passes behind the depth buffer, 1 where it stays in front of it or crosses the
        background, `unknown_open` where it leaves the view before either: `[h, w]`."""
        return self.march(direction, steps)[0]

    def march(self, direction: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`visibility`, and the pixel of the frame (flat index into `[H, W]`) each blocked ray first
        passes behind: `[..., h, w]` on the ray grid (-1 where none), whose radiance is what the ray
        sees instead of the sky. `direction` may carry leading dimensions `[..., h, w, 3]` (or
        `[..., 1, 1, 3]`): many rays per pixel in one march.

        Only rays from geometry march (background pixels read 1: the sky shows there anyway), and a
        ray retires once blocked or out of view: nothing can change it after either."""
        shape = torch.broadcast_shapes(direction.shape[:-1], self.grid_shape)
        pixels = self.grid_shape[0] * self.grid_shape[1]
        directions = direction.float().expand(*shape, 3).reshape(-1, 3)
        hit = torch.full((directions.shape[0],), -1, dtype=torch.long)
        occluded = torch.zeros(directions.shape[0], dtype=torch.bool)
        sky = torch.zeros_like(occluded)
        left = torch.zeros_like(occluded)
        origins, ranges = self.origins.reshape(-1, 3), self.range.reshape(-1)
        jitter = self.jitter.reshape(-1)
        active = torch.nonzero((ranges > 0).repeat(directions.shape[0] // pixels)).reshape(-1)
        for step in range(steps):
            if active.numel() == 0:
                break
            pixel = active % pixels
            t = ranges[pixel] * ((step + jitter[pixel]) / steps) ** 2
            sample = origins[pixel] + directions[active] * t[:, None]
            z = -sample[:, 2]  # planar depth of the sample
            behind_camera = z <= 1e-6
            safe = torch.where(behind_camera, 1.0, z)
            column = (sample[:, 0] / (safe * self.tan_half * self.width / self.height) + 1) / 2 * self.width
            row = (1 - sample[:, 1] / (safe * self.tan_half)) / 2 * self.height
            outside = (row < 0) | (row >= self.height) | (column < 0) | (column >= self.width)
            # clamped first, so truncation is the floor; off screen the border pixel stands in
            index = row.clamp(0, self.height - 1).long() * self.width + column.clamp(0, self.width - 1).long()
            buffer = self.depth[index]
            behind = (buffer + self.slack[index] < z * (1 - DEPTH_BIAS)) & (
                z - buffer < self.thickness[index]
            )
            in_view = ~behind_camera & ~outside
            first = in_view & behind
            hit[active[first]] = index[first]
            occluded[active[first]] = True
            sky[active[in_view & torch.isinf(buffer)]] = True
            settled = first | behind_camera | outside
            left[active[behind_camera | outside]] = True
            active = active[~settled]
        unknown = torch.full((directions.shape[0],), self.unknown_open)
        openness = torch.where(occluded, 0.0, torch.where(sky | ~left, 1.0, unknown)).double()
        return openness.reshape(shape), hit.reshape(shape)

    def soft_visibility(self, direction: torch.Tensor, radius: float) -> torch.Tensor:
        """Visibility of a light of angular `radius` around `direction`: the mean over its centre and
        four directions at 0.7 of its radius, for lights wider than SOFT_SHADOW_RADIANS."""
        if radius <= SOFT_SHADOW_RADIANS:
            return self.visibility(direction)
        tangent = F.normalize(torch.linalg.cross(direction, _not_parallel(direction)), dim=0)
        bitangent = torch.linalg.cross(direction, tangent)
        offset = math.tan(0.7 * radius)
        rays_ = [direction] + [
            F.normalize(direction + offset * (math.cos(a) * tangent + math.sin(a) * bitangent), dim=0)
            for a in (0.25 * math.pi, 0.75 * math.pi, 1.25 * math.pi, 1.75 * math.pi)
        ]
        return self.visibility(torch.stack(rays_)[:, None, None, :]).mean(0)

    def occlusion(self, normal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The share of cosine-weighted hemisphere rays around `normal` `[h, w, 3]` (the ray grid's) that
        leave `[h, w]`, and the pixels the blocked ones meet `[D, h, w]` (-1: none)."""
        helper = torch.where(
            normal[..., 1:2].abs() < 0.9, torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 0.0])
        )
        tangent = F.normalize(torch.linalg.cross(normal, helper.double(), dim=-1), dim=-1)
        bitangent = torch.linalg.cross(normal, tangent, dim=-1)
        turn = 2 * math.pi * self.jitter  # a per-pixel turn of the pattern: no banding, no noise
        index = torch.arange(OCCLUSION_DIRECTIONS, dtype=torch.float32)[:, None, None]  # [D, 1, 1]
        radius = torch.sqrt((index + 0.5) / OCCLUSION_DIRECTIONS)  # cosine-weighted (Malley)
        angle = turn + 2 * math.pi * index * 0.6180339887  # golden-angle spiral, [D, H, W]
        x, y, z = (
            radius * torch.cos(angle),
            radius * torch.sin(angle),
            torch.sqrt(1 - radius**2).expand_as(angle),
        )
        direction = x[..., None] * tangent + y[..., None] * bitangent + z[..., None] * normal  # [D, H, W, 3]
        openness, hits = self.march(direction, OCCLUSION_STEPS)
        return _depth_aware_blur(openness.mean(0), self.grid_depth), hits


def _nearest_grid_pixel(depth: torch.Tensor, stride: int) -> torch.Tensor:
    """For each pixel of `depth` `[H, W]`, the flat index of the ray-grid pixel (every `stride`-th)
    among the (up to) four around it whose depth is nearest its own `[H, W]`: no light leaks across
    a silhouette. A pixel on the grid picks itself."""
    height, width = depth.shape
    grid_rows, grid_columns = (height + stride - 1) // stride, (width + stride - 1) // stride
    rows, columns = torch.arange(height) // stride, torch.arange(width) // stride
    finite = torch.where(torch.isfinite(depth), depth, torch.tensor(1e30, dtype=depth.dtype))
    grid = finite[::stride, ::stride]
    best = torch.full((height, width), math.inf, dtype=depth.dtype)
    nearest = torch.zeros((height, width), dtype=torch.long)
    for row_step, column_step in ((0, 0), (0, 1), (1, 0), (1, 1)):
        row = (rows + row_step).clamp_max(grid_rows - 1)[:, None]
        column = (columns + column_step).clamp_max(grid_columns - 1)[None, :]
        distance = (grid[row, column] - finite).abs()
        closer = distance < best
        best = torch.where(closer, distance, best)
        nearest = torch.where(closer, row * grid_columns + column, nearest)
    return nearest


def _depth_step(depth: torch.Tensor) -> torch.Tensor:
    """The largest depth difference of each pixel to its four neighbours `[H, W]` (0 at silhouettes
    against the background)."""
    finite = torch.where(torch.isfinite(depth), depth, torch.nan)
    padded = F.pad(finite[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    neighbours = torch.stack(
        [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
    )  # [4, H, W]
    steps = (neighbours - finite).abs()
    steps = torch.where(torch.isnan(steps) | (steps > 0.1 * finite.abs()), 0.0, steps)  # silhouettes: none
    return torch.nan_to_num(steps.amax(0), nan=0.0)


BLUR_RADIUS = 2  # the occlusion and the bounce are averaged over (2r + 1)² pixels of similar depth
SHADOW_BLUR_RADIUS = 1  # the lights' shadows and the reflection: 3×3, their rays are sharper


def _depth_aware_blur(values: torch.Tensor, depth: torch.Tensor, radius: int = BLUR_RADIUS) -> torch.Tensor:
    """`values` `[H, W]` or `[H, W, C]` averaged over the (2·radius + 1)² neighbours within 5 % of
    each pixel's depth `[H, W]`: the per-pixel dither of the rays goes, edges stay."""
    finite = torch.where(torch.isfinite(depth), depth, 0.0)
    height, width = finite.shape
    channels = values.reshape(height, width, -1)  # [H, W, C]
    padded_values = F.pad(channels.permute(2, 0, 1)[None], (radius,) * 4, mode="replicate")[0].permute(
        1, 2, 0
    )
    padded_depth = F.pad(finite[None, None], (radius,) * 4, mode="replicate")[0, 0]
    total = torch.zeros(channels.shape, dtype=torch.float64)
    count = torch.zeros(height, width, 1, dtype=torch.float64)
    for dy in range(2 * radius + 1):  # one shifted copy per neighbour: no [H, W, (2r + 1)²] patches
        for dx in range(2 * radius + 1):
            neighbour = padded_depth[dy : dy + height, dx : dx + width]
            near = ((neighbour - finite).abs() <= 0.05 * finite)[..., None]
            total += torch.where(near, padded_values[dy : dy + height, dx : dx + width], 0.0)
            count += near
    return (total / count.clamp_min(1)).reshape(values.shape)


def _not_parallel(direction: torch.Tensor) -> torch.Tensor:
    axis = torch.zeros(3, dtype=direction.dtype)
    axis[int(torch.argmin(direction.abs()))] = 1.0
    return axis


def shaded_visibility_source_model(
    gbuffers: GBuffers, envmap_cam: np.ndarray, vertical_fov_degrees: float, visibility_blur: float = 0.0
) -> np.ndarray:
    """The bridge's `shaded_visibility` source: `shade_with_visibility` in model space `[F, H, W, 3]`."""
    return enc.beauty_to_model(
        shade_with_visibility(gbuffers, envmap_cam, vertical_fov_degrees, visibility_blur)
    )
