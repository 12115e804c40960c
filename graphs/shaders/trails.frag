// Feedback trails: the previous frame, turned and shrunk a little, fades behind rings
// that bloom on every onset, over a ground that lights up with it.  Each beat kicks
// the whole picture: the feedback zooms out, the centre flares and the colour of the
// background lifts, so the beat is seen across the frame, not only in one ring.
uniform sampler2D prev;  // this shader's previous frame
uniform float onset;     // 1 on an onset, fading
uniform float beat;      // 1 on a beat, fading
uniform float level;     // loudness 0..1
uniform float tint;      // 0..1, where on the colour wheel the rings are

vec3 palette(float t) {
    return 0.5 + 0.5 * cos(6.28318 * (t + vec3(0.0, 0.33, 0.67)));
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = fragCoord / iResolution.xy;
    float aspect = iResolution.x / iResolution.y;
    vec2 p = (uv - 0.5) * vec2(aspect, 1.0);
    float r = length(p);
    // Feedback: turned with the loudness, pushed outward on the beat.
    float ang = 0.006 + 0.03 * level;
    mat2 turn = mat2(cos(ang), sin(ang), -sin(ang), cos(ang));
    vec2 q = turn * p * (0.985 - 0.035 * beat - 0.01 * level);
    q = q / vec2(aspect, 1.0) + 0.5;
    vec3 trail = texture(prev, q).rgb * (0.86 + 0.08 * level);
    // A ring per onset, thick while fresh, widening as it fades.
    float radius = 0.04 + 0.5 * (1.0 - onset);
    float width = 0.008 + 0.03 * onset;
    float ring = smoothstep(width, 0.0, abs(r - radius)) * onset;
    vec3 col = palette(tint + 0.15 * r);
    // The beat: a flare at the centre and a lift of the whole frame.
    float flare = beat * exp(-r * r * 6.0);
    vec3 ground = palette(tint + 0.5) * (0.08 + 0.15 * level) * (1.1 - r) * (1.0 + 4.0 * onset);
    // Everything new is composited with max(), never added onto the trail, so the
    // feedback cannot build up to white.
    vec3 fresh = col * ring * (0.6 + 0.9 * level) + col * flare * 0.9 + ground
                 + palette(tint + 0.25) * beat * 0.22;
    fragColor = vec4(max(trail, fresh), 1.0);
}
