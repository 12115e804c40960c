// An image recoloured by a hue: the chord's "feel" as colour (seed 004).  The image's
// brightness is kept; its colour turns toward the hue by 'amount'; every beat pushes
// the picture in and lights it, and a soft flash follows onsets.
uniform sampler2D image;
uniform float hue;      // 0..1 round the colour wheel (from audio.chroma's strongest class)
uniform float amount;   // 0..1, how far the colour turns
uniform float onset;    // 1 on an onset, fading
uniform float beat;     // 1 on a beat, fading
uniform vec2 image_size;

// The frame's uv to the image's, filling the frame with the image, aspect kept (the
// overflow is cropped): a square image on a 16:9 screen loses its top and bottom.
vec2 cover(vec2 uv, vec2 size) {
    float frame = iResolution.x / iResolution.y;
    float pic = size.y > 0.0 ? size.x / size.y : frame;
    vec2 s = frame > pic ? vec2(1.0, pic / frame) : vec2(frame / pic, 1.0);
    return (uv - 0.5) * s + 0.5;
}

vec3 hsv(float h, float s, float v) {
    return v * mix(vec3(1.0), clamp(abs(mod(h * 6.0 + vec3(0.0, 4.0, 2.0), 6.0) - 3.0) - 1.0, 0.0, 1.0), s);
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = (cover(fragCoord / iResolution.xy, image_size) - 0.5) / (1.0 + 0.1 * beat) + 0.5;
    vec3 c = texture(image, uv).rgb;
    float luma = dot(c, vec3(0.299, 0.587, 0.114));
    vec3 toned = hsv(hue, 0.8, 1.0) * luma * 1.6;
    vec3 col = (mix(c, toned, amount) + onset * 0.1) * (0.85 + 0.5 * beat);
    fragColor = vec4(col, 1.0);
}
