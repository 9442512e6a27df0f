import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseNvidiaSmiXml } from '../../lib/preprocess/gpu';

// A sample in nvidia-smi's v12 XML layout (driver 550), shaped like an H100's report.
const H100 = readFileSync(path.join(__dirname, '..', 'fixtures', 'nvidia-smi-h100.xml'), 'utf8');

describe('GPU inventory from nvidia-smi -q -x, for run documentation', () => {
  it('reads driver, CUDA, model, memory and the confidential-computing mode', () => {
    expect(parseNvidiaSmiXml(H100)).toEqual({
      driverVersion: '550.127.05',
      cudaVersion: '12.4',
      confidentialCompute: null,
      gpus: [
        {
          index: 0,
          model: 'NVIDIA H100 80GB HBM3',
          uuid: 'GPU-00000000-1111-2222-3333-444444444444',
          busId: '00000000:19:00.0',
          memoryTotal: '81559 MiB',
          computeCapability: null,
          confidentialCompute: 'OFF',
        },
      ],
    });
  });

  it('lists every GPU, takes a top-level mode where the driver reports one there, and N/A as unknown', () => {
    const second = H100.replace('<cc_mode>OFF</cc_mode>', '<cc_mode>N/A</cc_mode>')
      .replace('00000000:19:00.0', '00000000:2A:00.0')
      .replace('NVIDIA H100 80GB HBM3', 'NVIDIA H100 NVL');
    const gpuOf = (xml: string) => xml.slice(xml.indexOf('<gpu '), xml.indexOf('</gpu>') + '</gpu>'.length);
    const two = H100.replace('</gpu>', `</gpu>\n${gpuOf(second)}`).replace(
      '<attached_gpus>1</attached_gpus>',
      '<attached_gpus>2</attached_gpus>\n<conf_compute_mode>ON</conf_compute_mode>',
    );
    const inventory = parseNvidiaSmiXml(two);
    expect(inventory.confidentialCompute).toBe('ON');
    expect(inventory.gpus.map((g) => [g.model, g.busId, g.confidentialCompute])).toEqual([
      ['NVIDIA H100 80GB HBM3', '00000000:19:00.0', 'OFF'],
      ['NVIDIA H100 NVL', '00000000:2A:00.0', 'ON'],
    ]);
  });

  it('refuses what is not nvidia-smi XML', () => {
    expect(() => parseNvidiaSmiXml('<html></html>')).toThrow('not nvidia-smi XML: no <nvidia_smi_log> element');
    expect(() => parseNvidiaSmiXml('<nvidia_smi_log><attached_gpus>0</attached_gpus></nvidia_smi_log>')).toThrow(
      'nvidia-smi XML without <driver_version>',
    );
  });
});
