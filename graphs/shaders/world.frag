// Seed 000, a live music world: a landscape flown over, generated from the music.
// The ground is a height field whose hills rise with the bass and whose colours come
// from the spectrum, near hills by the low bands and far ones by the high bands; the
// far ranges and the sky move slower than the ground (parallax).  Each beat swings the
// camera (a bob and a lean) and flashes the sky; onsets light stars.  The audience's
// hands (osc.pose: up to four people) raise the land under them and glow there.
uniform sampler2D spectrum;  // band energies 0..1
uniform float bass;          // 0..1
uniform float beat;          // 1 on a beat, fading
uniform float onset;         // 1 on an onset, fading
uniform float motion;        // how much the audience moves
uniform vec2 hands[8];       // four people's wrists, 0..1 image coordinates; -1 for none

float hash(vec2 p) { return fract(sin(dot(p, vec2(127.1, 311.7))) * 43758.5453); }

float noise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    return mix(mix(hash(i), hash(i + vec2(1, 0)), u.x), mix(hash(i + vec2(0, 1)), hash(i + vec2(1, 1)), u.x), u.y);
}

float band(float k) { return texture(spectrum, vec2(k, 0.5)).r; }

// How much the hands lift the land at a screen position.
float lift(vec2 uv) {
    float l = 0.0;
    for (int i = 0; i < 8; i++) {
        vec2 h = hands[i];
        if (h.x < 0.0) continue;
        vec2 d = (uv - vec2(h.x, 1.0 - h.y)) * vec2(iResolution.x / iResolution.y, 1.0);
        l += exp(-dot(d, d) * 14.0);
    }
    return l;
}

float ground(vec2 p) {
    float h = 0.0, a = 0.5;
    vec2 q = p * 0.35;
    for (int i = 0; i < 4; i++) {
        h += a * noise(q);
        q = q * 2.03 + vec2(1.7, 9.2);
        a *= 0.5;
    }
    return (h - 0.45) * (0.9 + 1.6 * bass);
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = fragCoord / iResolution.xy;
    vec2 p = (2.0 * fragCoord - iResolution.xy) / iResolution.y;
    float t = iTime;
    // Camera: flying forward; each beat bobs it up and leans it.
    float bob = 0.22 * beat;
    vec3 ro = vec3(0.4 * sin(t * 0.13), 1.15 + bob + 0.1 * sin(t * 0.4), t * (1.2 + 0.6 * bass));
    float lean = 0.08 * sin(t * 0.3) + 0.1 * beat * sin(t * 2.0);
    vec3 rd = normalize(vec3(p.x * cos(lean) - p.y * sin(lean), p.x * sin(lean) + p.y * cos(lean) - 0.28,
                             1.6 - 0.3 * beat));
    // Sky: a gradient that flashes on the beat, stars on onsets, two ranges of far
    // mountains moving slower than the ground.
    float up = clamp(rd.y * 2.0 + 0.5, 0.0, 1.0);
    vec3 sky = mix(vec3(0.35, 0.12, 0.32) + 0.3 * band(0.1), vec3(0.03, 0.04, 0.14), up);
    sky += beat * vec3(0.25, 0.16, 0.35) * (1.0 - up);
    vec2 cell = floor(vec2(atan(rd.x, rd.z) * 60.0, rd.y * 60.0) + vec2(t * 0.5, 0.0));
    sky += (0.3 + onset) * step(0.992, hash(cell)) * up * vec3(1.0);
    for (int r = 0; r < 2; r++) {
        float fr = float(r);
        float x = atan(rd.x, rd.z) * (3.0 + 2.0 * fr) + ro.z * (0.01 + 0.02 * fr);
        float ridge = 0.05 + 0.06 * fr + 0.07 * noise(vec2(x * 2.0, fr * 7.0)) * (1.0 + band(0.6 + 0.2 * fr));
        vec3 haze = mix(vec3(0.18, 0.1, 0.3), vec3(0.1, 0.07, 0.2), fr);
        sky = mix(sky, haze, smoothstep(ridge + 0.005, ridge - 0.005, rd.y));
    }
    vec3 col = sky;
    // The ground, ray-marched.
    float d = 0.05, hit = -1.0;
    float raise = 1.2 * lift(uv);
    for (int i = 0; i < 110; i++) {
        vec3 q = ro + rd * d;
        float h = ground(q.xz) + raise * exp(-d * 0.15);
        float gap = q.y - h;
        if (gap < 0.002 * d) { hit = d; break; }
        d += max(0.02, 0.3 * gap);
        if (d > 40.0) break;
    }
    if (hit > 0.0) {
        vec3 q = ro + rd * hit;
        float e = 0.02;
        float h = ground(q.xz);
        vec3 n = normalize(vec3(h - ground(q.xz + vec2(e, 0.0)), e, h - ground(q.xz + vec2(0.0, e))));
        float k = clamp(hit / 40.0, 0.0, 1.0);                  // near: low bands; far: high
        float b = band(0.05 + 0.9 * k);
        vec3 land = mix(vec3(0.08, 0.35, 0.3), vec3(0.95, 0.45, 0.2), b);
        land = mix(land, vec3(0.3, 0.2, 0.5), smoothstep(0.0, 0.6, h));
        float light = 0.35 + 0.65 * clamp(dot(n, normalize(vec3(0.4, 0.8, -0.3))), 0.0, 1.0);
        col = land * light * (0.8 + 0.5 * beat + 0.3 * onset);
        col = mix(col, sky, smoothstep(0.25, 1.0, k));           // distance haze
    }
    // The hands glow where they are.
    col += vec3(1.0, 0.8, 0.5) * 0.5 * min(1.0, lift(uv) * 2.0) * (0.6 + 0.6 * min(1.0, motion * 4.0))
           * smoothstep(0.3, 1.0, lift(uv));
    fragColor = vec4(col, 1.0);
}
